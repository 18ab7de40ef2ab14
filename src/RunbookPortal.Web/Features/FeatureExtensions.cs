using RunbookPortal.Web.Features.Admin;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Features.Runbooks;

namespace RunbookPortal.Web.Features;

public static class FeatureExtensions
{
    public static IHostApplicationBuilder AddPortalFeatures(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton<AuditLog>();
        services.AddScoped<UserAdminService>();

        services.AddScoped<RunbookCatalog>();
        services.AddOptions<S3ArchiveOptions>().BindConfiguration(S3ArchiveOptions.Section);
        services.AddSingleton<RunbookArchiveQueue>();
        services.AddSingleton<RunbookArchiver>();
        services.AddHostedService(sp => sp.GetRequiredService<RunbookArchiver>());

        builder.AddExecutionEngine();
        services.AddScoped<ApprovalService>();
        return builder;
    }

    /// <summary>Runs <paramref name="work"/> with a service from a fresh DI scope: Blazor circuits live long, a DbContext should not.</summary>
    public static async Task<T> InScopeAsync<TService, T>(this IServiceScopeFactory scopes, Func<TService, Task<T>> work) where TService : notnull
    {
        await using var scope = scopes.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<TService>());
    }
}
