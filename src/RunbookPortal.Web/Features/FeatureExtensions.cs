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
        // What the SDK's own client does for S3: redirects come back as answers, bodies are not decompressed.
        services.AddHttpClient(RunbookArchiver.HttpClientName)
            .ConfigurePrimaryHttpMessageHandler(() => new HttpClientHandler { AllowAutoRedirect = false, AutomaticDecompression = System.Net.DecompressionMethods.None });
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
