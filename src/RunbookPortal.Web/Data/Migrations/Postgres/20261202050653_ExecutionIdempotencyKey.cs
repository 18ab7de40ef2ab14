using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace RunbookPortal.Web.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class ExecutionIdempotencyKey : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "IdempotencyKey",
                table: "Executions",
                type: "character varying(200)",
                maxLength: 200,
                nullable: true);

            migrationBuilder.CreateIndex(
                name: "IX_Executions_RequestedBy_IdempotencyKey",
                table: "Executions",
                columns: new[] { "RequestedBy", "IdempotencyKey" },
                unique: true,
                filter: "\"IdempotencyKey\" IS NOT NULL");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropIndex(
                name: "IX_Executions_RequestedBy_IdempotencyKey",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "IdempotencyKey",
                table: "Executions");
        }
    }
}
