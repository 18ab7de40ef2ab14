using System.ComponentModel.DataAnnotations;
using System.Reflection;
using Microsoft.Extensions.Options;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

public static class ExecutionExtensions
{
    /// <summary>The <c>IHttpClientFactory</c> client of <c>http</c> steps.</summary>
    public const string HttpStepsClient = "http-steps";

    /// <summary>The execution engine in this host: options, the runner and its step executors, the queue worker.</summary>
    public static IHostApplicationBuilder AddExecutionEngine(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        // Engine:* is two classes, no setting in both: EngineOptions (this node's queue and shell steps) and the
        // runner's ExecutionOptions. Their range attributes are the rules; Check turns a break of one into a
        // StartupException naming the setting, before anything starts. ValidateOnStart holds the bound instances to
        // the same rules, should a later configuration source change them.
        var section = builder.Configuration.GetSection(EngineOptions.Section);
        var configured = Check<EngineOptions>(section);
        Check<ExecutionOptions>(section);
        CheckRunAs(configured.RunAs);
        CheckLease(configured);
        services.AddOptions<EngineOptions>().BindConfiguration(EngineOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.KillGrace <= o.LeaseDuration / 2, "Engine:LeaseDuration must be at least twice Engine:KillGrace.").ValidateOnStart();
        services.AddOptions<ExecutionOptions>().BindConfiguration(EngineOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        // Shutdown: the grace for running steps, then SIGTERM and up to KillGrace before SIGKILL, then the runs are recorded.
        var shutdown = configured.ShutdownGrace + configured.KillGrace + TimeSpan.FromSeconds(10);
        services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdown);

        services.AddSingleton<ExecutionFeed>();
        services.AddSingleton<ExecutionNotifier>();
        services.AddSignalR();
        services.AddSingleton<ExecutionHubConnections>();
        services.AddSingleton<Microsoft.AspNetCore.SignalR.HubLifetimeManager<ExecutionHub>>(sp => sp.GetRequiredService<ExecutionHubConnections>());
        services.AddSingleton<ExecutionHubWatchers>();
        AddEventBridge(builder);
        services.AddSingleton<RunningExecutions>();
        services.AddScoped<ExecutionService>();
        services.AddScoped<RunningNowQuery>();
        services.AddSingleton<ExecutionWorker>();
        services.AddHostedService(sp => sp.GetRequiredService<ExecutionWorker>());
        AddRunner(services);
        return builder;
    }

    /// <summary>
    /// With PostgreSQL, events reach the watchers of every node (<see cref="PostgresEventBridge"/>), over a data source
    /// of its own whose connections send keepalives, so a listening connection cut off silently is noticed.
    /// </summary>
    private static void AddEventBridge(IHostApplicationBuilder builder)
    {
        var database = builder.Configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        if (database.Provider != DatabaseProvider.Postgres || builder.Configuration.GetConnectionString("Postgres") is not { Length: > 0 } connectionString)
            return;
        var bridge = new Npgsql.NpgsqlConnectionStringBuilder(connectionString) { KeepAlive = 10, MaxPoolSize = 4, ApplicationName = "RunbookPortal events" };
        builder.Services.AddSingleton(new BridgeDataSource(Npgsql.NpgsqlDataSource.Create(bridge.ConnectionString)));
        builder.Services.AddHostedService<PostgresEventBridge>();
    }

    /// <summary>
    /// <typeparamref name="T"/> bound from <paramref name="section"/>; a value that is not of its setting's type, or is
    /// outside its range, stops the start with a <see cref="StartupException"/> that names the setting.
    /// </summary>
    private static T Check<T>(IConfigurationSection section) where T : class, new()
    {
        T options;
        try
        {
            options = section.Get<T>() ?? new T();
        }
        catch (InvalidOperationException ex) // names the setting, and the type it should have been
        {
            throw new StartupException($"{ex.Message} Write a duration as [d.]hh:mm:ss[.fff] (00:00:30 is 30 seconds, 1.00:00:00 a day) and a number in digits.", ex);
        }
        foreach (var property in typeof(T).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            var value = property.GetValue(options);
            foreach (var rule in property.GetCustomAttributes<ValidationAttribute>())
            {
                var setting = $"{section.Path}:{property.Name}";
                // Read before IsValid, which turns a range's limits into values ("00:00:00.010" into "00:00:00.0100000").
                var allowed = rule is RangeAttribute range ? $"it must be from {range.Minimum} to {range.Maximum}" : rule.FormatErrorMessage(setting);
                if (rule.IsValid(value))
                    continue;
                throw new StartupException($"{setting} is '{section[property.Name] ?? value}'; {allowed}.");
            }
        }
        return options;
    }

    /// <summary>A lease too short to stop a step in before it expires stops the start (see <see cref="EngineOptions.FenceAfter"/>).</summary>
    private static void CheckLease(EngineOptions o)
    {
        if (o.KillGrace > o.LeaseDuration / 2)
            throw new StartupException(
                $"Engine:LeaseDuration ({o.LeaseDuration}) must be at least twice Engine:KillGrace ({o.KillGrace}): " +
                "a node that cannot renew its lease stops its step (SIGTERM, KillGrace, SIGKILL) before the lease expires and another node takes the run over.");
    }

    /// <summary>A <c>Engine:RunAs</c> that cannot work stops the start, with what to do.</summary>
    private static void CheckRunAs(string? runAs)
    {
        if (string.IsNullOrWhiteSpace(runAs))
            return;
        if (UnixAccount.Find(runAs) is null)
            throw new StartupException($"Engine:RunAs names the user '{runAs}', and this machine has no such user. Create it (useradd --create-home {runAs}) or unset Engine:RunAs.");
        if (!UnixAccount.CanSwitchUser)
            throw new StartupException($"Engine:RunAs is '{runAs}', but the portal does not run as root and so cannot switch to that user. Run the portal as root, or unset Engine:RunAs.");
    }

    private static void AddRunner(IServiceCollection services)
    {
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<EngineOptions>>().Value;
            var data = sp.GetRequiredService<IOptions<DatabaseOptions>>().Value;
            var runAs = !string.IsNullOrWhiteSpace(o.RunAs);
            if (string.IsNullOrWhiteSpace(o.WorkingDirectory))
                DataFolder.Secure(data.ResolveDataDirectory(), runAs); // the runs folder is in it (PostgreSQL too)
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
        services.AddAwsSteps();
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<ExecutionOptions>>().Value);
        services.AddSingleton<ExecutionRunner>();
    }
}
