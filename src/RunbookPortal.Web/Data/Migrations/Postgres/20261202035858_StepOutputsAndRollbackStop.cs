using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace RunbookPortal.Web.Data.Migrations.Postgres
{
    /// <inheritdoc />
    public partial class StepOutputsAndRollbackStop : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "ProtectedOutputs",
                table: "ExecutionSteps",
                type: "text",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "RollbackStopRequestedBy",
                table: "Executions",
                type: "character varying(256)",
                maxLength: 256,
                nullable: true);
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropColumn(
                name: "ProtectedOutputs",
                table: "ExecutionSteps");

            migrationBuilder.DropColumn(
                name: "RollbackStopRequestedBy",
                table: "Executions");
        }
    }
}
