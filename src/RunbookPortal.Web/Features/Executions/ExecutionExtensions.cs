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
        var grace = builder.Configuration.GetSection(EngineOptions.Section).Get<EngineOptions>()?.ShutdownGrace ?? new EngineOptions().ShutdownGrace;
        services.Configure<HostOptions>(o => o.ShutdownTimeout = grace + TimeSpan.FromSeconds(10));

        services.AddSingleton<ExecutionNotifier>();
        services.AddSingleton<RunningExecutions>();
        services.AddScoped<ExecutionService>();
        services.AddSingleton<ExecutionWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<ExecutionWorker>());
        AddRunner(services);
        return builder;
    }

    private static void AddRunner(IServiceCollection services)
    {
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<EngineOptions>>().Value;
            return new ShellOptions { WorkingDirectory = o.WorkingDirectory, Environment = o.Environment };
        });
        services.AddSingleton<IStepExecutor, ShellStepExecutor>();
        // Each http step has its own timeout (the step's), not HttpClient's default 100 s.
        services.AddHttpClient<HttpStepExecutor>(c => c.Timeout = Timeout.InfiniteTimeSpan);
        services.AddSingleton<IStepExecutor>(sp => sp.GetRequiredService<HttpStepExecutor>());
        services.AddSingleton<IStepExecutor, WaitStepExecutor>();
        services.AddSingleton(new ExecutionOptions());
        services.AddSingleton<ExecutionRunner>();
    }
}
