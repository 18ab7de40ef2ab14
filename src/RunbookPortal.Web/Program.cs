using RunbookPortal.Web.Components;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Features;
using RunbookPortal.Web.Features.Admin;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Features.Runbooks;
using RunbookPortal.Web.Infrastructure;

try
{
    var builder = WebApplication.CreateBuilder(args);
    builder.AddRepositorySettings()
        .AddPortalPlatform()
        .AddPortalDatabase()
        .AddPortalIdentity()
        .AddPortalFeatures();
    builder.AddPortalUi();

    var app = builder.Build();
    app.UsePortalPlatform();
    app.UsePortalUi();
    app.MapPortalOperations()
        .MapAccountEndpoints()
        .MapAdminApi()
        .MapAuditApi()
        .MapRunbookApi()
        .MapExecutionApi()
        .MapApprovalApi();
    app.MapPortalUi();

    await app.RunAsync();
    return 0;
}
catch (StartupException ex) when (System.Reflection.Assembly.GetEntryAssembly() == typeof(Program).Assembly)
{
    // Run as the portal itself: one clear line and a failing exit code. Hosted by a test, the host sees the exception.
    Console.Error.WriteLine($"RunbookPortal cannot start: {ex.Message}");
    return 1;
}

/// <summary>Entry point; public for WebApplicationFactory.</summary>
public partial class Program;
