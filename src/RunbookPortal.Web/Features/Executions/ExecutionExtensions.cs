using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Web.Features.Executions;

public static class ExecutionExtensions
{
    /// <summary>The <c>IHttpClientFactory</c> client of <c>http</c> steps.</summary>
    public const string HttpStepsClient = "http-steps";

    /// <summary>The execution engine in this host: options, the runner and its step executors, the queue worker.</summary>
    public static IHostApplicationBuilder AddExecutionEngine(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<EngineOptions>().BindConfiguration(EngineOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        var configured = builder.Configuration.GetSection(EngineOptions.Section).Get<EngineOptions>() ?? new EngineOptions();
        var grace = configured.ShutdownGrace;
        CheckRunAs(configured.RunAs);
        services.Configure<HostOptions>(o => o.ShutdownTimeout = grace + TimeSpan.FromSeconds(10));

        services.AddSingleton<ExecutionNotifier>();
        services.AddSingleton<RunningExecutions>();
        services.AddScoped<ExecutionService>();
        services.AddSingleton<ExecutionWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<ExecutionWorker>());
        AddRunner(services);
        return builder;
    }

    /// <summary>A <c>Engine:RunAs</c> that cannot work stops the start, with what to do.</summary>
    private static void CheckRunAs(string? runAs)
    {
        if (string.IsNullOrWhiteSpace(runAs))
            return;
        if (UnixAccount.Find(runAs) is null)
            throw new Data.StartupException($"Engine:RunAs names the user '{runAs}', and this machine has no such user. Create it (useradd --create-home {runAs}) or unset Engine:RunAs.");
        if (!UnixAccount.CanSwitchUser)
            throw new Data.StartupException($"Engine:RunAs is '{runAs}', but the portal does not run as root and so cannot switch to that user. Run the portal as root, or unset Engine:RunAs.");
    }

    private static void AddRunner(IServiceCollection services)
    {
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<EngineOptions>>().Value;
            var data = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<Data.DatabaseOptions>>().Value;
            var runAs = !string.IsNullOrWhiteSpace(o.RunAs);
            if (string.IsNullOrWhiteSpace(o.WorkingDirectory))
                Data.DataFolder.Secure(data.ResolveDataDirectory(), runAs); // the runs folder is in it (PostgreSQL too)
            return new ShellOptions
            {
                WorkingDirectory = string.IsNullOrWhiteSpace(o.WorkingDirectory) ? null : o.WorkingDirectory,
                RunsFolder = Path.Combine(data.ResolveDataDirectory(), "runs"),
                Environment = o.Environment,
                KillGrace = o.KillGrace,
                RunAs = runAs ? o.RunAs : null,
            };
        });
        services.AddSingleton<IStepExecutor, ShellStepExecutor>();
        // Each http step has its own timeout (the step's), not HttpClient's default 100 s. The executor lives as long
        // as the runner (the node): it asks the factory for a client at every attempt, so the factory's pooled
        // handlers are renewed (a DNS change is seen) — a typed client injected into a singleton would be kept for ever.
        services.AddHttpClient(HttpStepsClient, c => c.Timeout = Timeout.InfiniteTimeSpan);
        services.AddSingleton<IStepExecutor>(sp =>
        {
            var clients = sp.GetRequiredService<IHttpClientFactory>();
            return new HttpStepExecutor(() => clients.CreateClient(HttpStepsClient));
        });
        services.AddSingleton<IStepExecutor, WaitStepExecutor>();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<EngineOptions>>().Value;
            return new ExecutionOptions { DefaultStepTimeout = o.DefaultStepTimeout };
        });
        services.AddSingleton<ExecutionRunner>();
    }
}
