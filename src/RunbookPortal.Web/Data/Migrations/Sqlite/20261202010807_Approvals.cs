using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace RunbookPortal.Web.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class Approvals : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.AddColumn<string>(
                name: "Contributors",
                table: "RunbookVersions",
                type: "TEXT",
                nullable: false,
                defaultValue: "");

            // Versions saved before this release: their last saver is the one contributor known.
            migrationBuilder.Sql("UPDATE \"RunbookVersions\" SET \"Contributors\" = '|' || lower(\"Author\") || '|'");

            migrationBuilder.AddColumn<Guid>(
                name: "ApprovalRequestId",
                table: "Executions",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "InputBy",
                table: "Executions",
                type: "TEXT",
                maxLength: 256,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "InputComment",
                table: "Executions",
                type: "TEXT",
                maxLength: 2000,
                nullable: true);

            migrationBuilder.AddColumn<DateTime>(
                name: "InputDeadline",
                table: "Executions",
                type: "TEXT",
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "InputDecision",
                table: "Executions",
                type: "TEXT",
                maxLength: 20,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "InputRole",
                table: "Executions",
                type: "TEXT",
                maxLength: 40,
                nullable: true);

            migrationBuilder.AddColumn<string>(
                name: "InputStepId",
                table: "Executions",
                type: "TEXT",
                maxLength: 100,
                nullable: true);

            migrationBuilder.CreateTable(
                name: "ApprovalRequests",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    ExecutionId = table.Column<Guid>(type: "TEXT", nullable: false),
                    RunbookVersionId = table.Column<Guid>(type: "TEXT", nullable: false),
                    RunbookName = table.Column<string>(type: "TEXT", maxLength: 63, nullable: false),
                    Version = table.Column<int>(type: "INTEGER", nullable: false),
                    RequestedBy = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    RequestedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    RequestComment = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: true),
                    RequiredApprovals = table.Column<int>(type: "INTEGER", nullable: false),
                    ApproverRole = table.Column<string>(type: "TEXT", maxLength: 40, nullable: false),
                    ConditionsJson = table.Column<string>(type: "TEXT", nullable: false),
                    ParametersHash = table.Column<string>(type: "TEXT", maxLength: 64, nullable: false),
                    ExpiresAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Status = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    DecidedAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    Revision = table.Column<int>(type: "INTEGER", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ApprovalRequests", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "ApprovalDecisions",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    ApprovalRequestId = table.Column<Guid>(type: "TEXT", nullable: false),
                    By = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    At = table.Column<DateTime>(type: "TEXT", nullable: false),
                    Approved = table.Column<bool>(type: "INTEGER", nullable: false),
                    Comment = table.Column<string>(type: "TEXT", maxLength: 2000, nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_ApprovalDecisions", x => x.Id);
                    table.ForeignKey(
                        name: "FK_ApprovalDecisions_ApprovalRequests_ApprovalRequestId",
                        column: x => x.ApprovalRequestId,
                        principalTable: "ApprovalRequests",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_Executions_Status_InputDeadline",
                table: "Executions",
                columns: new[] { "Status", "InputDeadline" });

            migrationBuilder.CreateIndex(
                name: "IX_ApprovalDecisions_ApprovalRequestId_By",
                table: "ApprovalDecisions",
                columns: new[] { "ApprovalRequestId", "By" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_ApprovalRequests_ExecutionId",
                table: "ApprovalRequests",
                column: "ExecutionId",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_ApprovalRequests_RequestedBy",
                table: "ApprovalRequests",
                column: "RequestedBy");

            migrationBuilder.CreateIndex(
                name: "IX_ApprovalRequests_Status_ExpiresAt",
                table: "ApprovalRequests",
                columns: new[] { "Status", "ExpiresAt" });
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "ApprovalDecisions");

            migrationBuilder.DropTable(
                name: "ApprovalRequests");

            migrationBuilder.DropIndex(
                name: "IX_Executions_Status_InputDeadline",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "Contributors",
                table: "RunbookVersions");

            migrationBuilder.DropColumn(
                name: "ApprovalRequestId",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "InputBy",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "InputComment",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "InputDeadline",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "InputDecision",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "InputRole",
                table: "Executions");

            migrationBuilder.DropColumn(
                name: "InputStepId",
                table: "Executions");
        }
    }
}
