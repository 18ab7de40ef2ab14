using System;
using Microsoft.EntityFrameworkCore.Migrations;

#nullable disable

namespace RunbookPortal.Web.Data.Migrations.Sqlite
{
    /// <inheritdoc />
    public partial class RunbookCatalog : Migration
    {
        /// <inheritdoc />
        protected override void Up(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.CreateTable(
                name: "Runbooks",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    Name = table.Column<string>(type: "TEXT", maxLength: 63, nullable: false),
                    Title = table.Column<string>(type: "TEXT", maxLength: 200, nullable: false),
                    Description = table.Column<string>(type: "TEXT", nullable: true),
                    Type = table.Column<string>(type: "TEXT", maxLength: 40, nullable: false),
                    Owner = table.Column<string>(type: "TEXT", maxLength: 100, nullable: true),
                    Tags = table.Column<string>(type: "TEXT", nullable: false),
                    SearchText = table.Column<string>(type: "TEXT", nullable: false),
                    Status = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    LatestVersion = table.Column<int>(type: "INTEGER", nullable: false),
                    ActiveVersion = table.Column<int>(type: "INTEGER", nullable: true),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    CreatedBy = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    UpdatedAt = table.Column<DateTime>(type: "TEXT", nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_Runbooks", x => x.Id);
                });

            migrationBuilder.CreateTable(
                name: "RunbookTags",
                columns: table => new
                {
                    RunbookId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Tag = table.Column<string>(type: "TEXT", maxLength: 100, nullable: false)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_RunbookTags", x => new { x.RunbookId, x.Tag });
                    table.ForeignKey(
                        name: "FK_RunbookTags_Runbooks_RunbookId",
                        column: x => x.RunbookId,
                        principalTable: "Runbooks",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "RunbookVersions",
                columns: table => new
                {
                    Id = table.Column<Guid>(type: "TEXT", nullable: false),
                    RunbookId = table.Column<Guid>(type: "TEXT", nullable: false),
                    Version = table.Column<int>(type: "INTEGER", nullable: false),
                    Yaml = table.Column<string>(type: "TEXT", nullable: false),
                    Status = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    Author = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    CreatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    UpdatedAt = table.Column<DateTime>(type: "TEXT", nullable: false),
                    ReviewedBy = table.Column<string>(type: "TEXT", maxLength: 256, nullable: true),
                    PublishedAt = table.Column<DateTime>(type: "TEXT", nullable: true),
                    ArchiveState = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    ArchiveError = table.Column<string>(type: "TEXT", nullable: true),
                    ArchiveAttempts = table.Column<int>(type: "INTEGER", nullable: false),
                    ArchiveNextAttemptAt = table.Column<DateTime>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_RunbookVersions", x => x.Id);
                    table.ForeignKey(
                        name: "FK_RunbookVersions_Runbooks_RunbookId",
                        column: x => x.RunbookId,
                        principalTable: "Runbooks",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateTable(
                name: "RunbookVersionTransitions",
                columns: table => new
                {
                    Id = table.Column<long>(type: "INTEGER", nullable: false)
                        .Annotation("Sqlite:Autoincrement", true),
                    RunbookVersionId = table.Column<Guid>(type: "TEXT", nullable: false),
                    At = table.Column<DateTime>(type: "TEXT", nullable: false),
                    Actor = table.Column<string>(type: "TEXT", maxLength: 256, nullable: false),
                    Action = table.Column<string>(type: "TEXT", maxLength: 40, nullable: false),
                    From = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    To = table.Column<string>(type: "TEXT", maxLength: 20, nullable: false),
                    Comment = table.Column<string>(type: "TEXT", nullable: true)
                },
                constraints: table =>
                {
                    table.PrimaryKey("PK_RunbookVersionTransitions", x => x.Id);
                    table.ForeignKey(
                        name: "FK_RunbookVersionTransitions_RunbookVersions_RunbookVersionId",
                        column: x => x.RunbookVersionId,
                        principalTable: "RunbookVersions",
                        principalColumn: "Id",
                        onDelete: ReferentialAction.Cascade);
                });

            migrationBuilder.CreateIndex(
                name: "IX_Runbooks_Name",
                table: "Runbooks",
                column: "Name",
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_Runbooks_Owner",
                table: "Runbooks",
                column: "Owner");

            migrationBuilder.CreateIndex(
                name: "IX_Runbooks_Status",
                table: "Runbooks",
                column: "Status");

            migrationBuilder.CreateIndex(
                name: "IX_Runbooks_Type",
                table: "Runbooks",
                column: "Type");

            migrationBuilder.CreateIndex(
                name: "IX_RunbookTags_Tag",
                table: "RunbookTags",
                column: "Tag");

            migrationBuilder.CreateIndex(
                name: "IX_RunbookVersions_ArchiveState",
                table: "RunbookVersions",
                column: "ArchiveState");

            migrationBuilder.CreateIndex(
                name: "IX_RunbookVersions_OneActive",
                table: "RunbookVersions",
                column: "RunbookId",
                unique: true,
                filter: "\"Status\" = 'Active'");

            migrationBuilder.CreateIndex(
                name: "IX_RunbookVersions_RunbookId_Version",
                table: "RunbookVersions",
                columns: new[] { "RunbookId", "Version" },
                unique: true);

            migrationBuilder.CreateIndex(
                name: "IX_RunbookVersionTransitions_RunbookVersionId",
                table: "RunbookVersionTransitions",
                column: "RunbookVersionId");
        }

        /// <inheritdoc />
        protected override void Down(MigrationBuilder migrationBuilder)
        {
            migrationBuilder.DropTable(
                name: "RunbookTags");

            migrationBuilder.DropTable(
                name: "RunbookVersionTransitions");

            migrationBuilder.DropTable(
                name: "RunbookVersions");

            migrationBuilder.DropTable(
                name: "Runbooks");
        }
    }
}
