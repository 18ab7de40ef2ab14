using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Web.Features.Executions;

public static class ExecutionExtensions
{
    /// <summary>The execution engine in this host: options, the runner and its step executors, the queue worker.</summary>
    public static IHostApplicationBuilder AddExecutionEngine(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<EngineOptions>().BindConfiguration(EngineOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        var configured = builder.Configuration.GetSection(EngineOptions.Section).Get<EngineOptions>() ?? new EngineOptions();
        var grace = configured.ShutdownGrace;
        CheckRunAs(configured.RunAs);
        CheckLease(configured);
        services.Configure<HostOptions>(o => o.ShutdownTimeout = grace + TimeSpan.FromSeconds(10));

        services.AddSingleton<ExecutionNotifier>();
        services.AddSingleton<RunningExecutions>();
        services.AddScoped<ExecutionService>();
        services.AddSingleton<ExecutionWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<ExecutionWorker>());
        AddRunner(services);
        return builder;
    }

    /// <summary>A lease too short to stop a step in before it expires stops the start (see <see cref="EngineOptions.FenceAfter"/>).</summary>
    private static void CheckLease(EngineOptions o)
    {
        if (o.LeaseDuration < TimeSpan.FromSeconds(1) || o.KillGrace < TimeSpan.Zero || o.KillGrace > o.LeaseDuration / 2)
            throw new Data.StartupException(
                $"Engine:LeaseDuration ({o.LeaseDuration}) must be at least 1 second and at least twice Engine:KillGrace ({o.KillGrace}): " +
                "a node that cannot renew its lease stops its step (SIGTERM, KillGrace, SIGKILL) before the lease expires and another node takes the run over.");
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
        // Each http step has its own timeout (the step's), not HttpClient's default 100 s.
        services.AddHttpClient<HttpStepExecutor>(c => c.Timeout = Timeout.InfiniteTimeSpan);
        services.AddSingleton<IStepExecutor>(sp => sp.GetRequiredService<HttpStepExecutor>());
        services.AddSingleton<IStepExecutor, WaitStepExecutor>();
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<EngineOptions>>().Value;
            return new ExecutionOptions { DefaultStepTimeout = o.DefaultStepTimeout };
        });
        services.AddSingleton<ExecutionRunner>();
    }
}
