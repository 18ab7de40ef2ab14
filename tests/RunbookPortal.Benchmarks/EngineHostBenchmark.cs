using System.Diagnostics;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// The execution engine in the real host (worker, leases, database journal), driven through the REST API:
/// queued → first step started latency (server timestamps of the two events), and 200 concurrent executions on
/// one node. SQLite by default; PostgreSQL with the `postgres` argument (RBP_BENCH_POSTGRES / RBP_TEST_POSTGRES
/// / the rbp_test role of tests/scripts/test.sh).
/// </summary>
public static class EngineHostBenchmark
{
    private const string Token = "benchmark-token-0123456789abcdef0123456789abcdef";

    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(string[] args)
    {
        var postgres = args.Contains("postgres");
        // WebApplicationFactory looks for the web project's folder next to the solution unless told.
        var root = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(root, "RunbookPortal.sln")))
            root = Path.GetDirectoryName(root) ?? throw new InvalidOperationException("Run the benchmark from the repository.");
        Environment.SetEnvironmentVariable("ASPNETCORE_TEST_CONTENTROOT_RUNBOOKPORTAL_WEB", Path.Combine(root, "src", "RunbookPortal.Web"));
        await using var store = await BenchStore.CreateAsync(postgres);
        await using var portal = new Portal(store.Settings);
        using var api = portal.CreateClient();
        api.DefaultRequestHeaders.Authorization = new("Bearer", Token);

        await PublishAsync(portal, api, "bench-latency", "run: /bin/true");
        await PublishAsync(portal, api, "bench-concurrent", "run: sleep 1");
        await PublishAsync(portal, api, "bench-output", "run: seq 1 20000");
        Console.WriteLine($"Engine in the host ({(postgres ? "PostgreSQL" : "SQLite")}), MaxConcurrentExecutions 200.");

        // 1. Latency: one execution at a time, 60 times (after 5 warm-ups).
        var latencies = new List<TimeSpan>();
        var parts = new Dictionary<string, List<TimeSpan>> { ["queued → claimed"] = [], ["claimed → started"] = [], ["started → step started"] = [] };
        for (var i = 0; i < 65; i++)
        {
            var id = await StartAsync(api, "bench-latency");
            var events = await WaitForEndAsync(api, id);
            DateTime At(string kind) => events.First(e => e.GetProperty("kind").GetString() == kind).GetProperty("at").GetDateTime();
            if (i < 5)
                continue;
            latencies.Add(At("step_started") - At("execution_queued"));
            parts["queued → claimed"].Add(At("execution_claimed") - At("execution_queued"));
            parts["claimed → started"].Add(At("execution_started") - At("execution_claimed"));
            parts["started → step started"].Add(At("step_started") - At("execution_started"));
        }
        latencies.Sort();
        foreach (var part in parts.Values)
            part.Sort();
        Console.WriteLine("queued → first step started (server time), 60 runs:");
        Console.WriteLine($"  p50 {Measurement.Percentile(latencies, 50).TotalMilliseconds,8:0.0} ms   ({Measurement.Percentile(latencies, 50).TotalMilliseconds / 20:0.00} × the 20 ms goal)");
        Console.WriteLine($"  p99 {Measurement.Percentile(latencies, 99).TotalMilliseconds,8:0.0} ms   ({Measurement.Percentile(latencies, 99).TotalMilliseconds / 100:0.00} × the 100 ms goal)");
        Console.WriteLine("  of which, p50: " + string.Join(" · ", parts.Select(p => $"{p.Key} {Measurement.Percentile(p.Value, 50).TotalMilliseconds:0.0} ms")));

        // 2. 200 at once, each a one-second step.
        var clock = Stopwatch.StartNew();
        var ids = await Task.WhenAll(Enumerable.Range(0, 200).Select(_ => StartAsync(api, "bench-concurrent")));
        var ends = await Task.WhenAll(ids.Select(id => WaitForEndAsync(api, id, seconds: 300)));
        var statuses = ends.Select(e => e.Last().GetProperty("data").GetProperty("status").GetString()).GroupBy(s => s).ToDictionary(g => g.Key!, g => g.Count());
        Console.WriteLine($"200 concurrent executions of a 1 s step: {string.Join(", ", statuses.Select(s => $"{s.Value} {s.Key}"))} in {clock.Elapsed.TotalSeconds:0.0} s (ideal 1 s + overhead).");
        foreach (var reason in ends.Select(e => e.Last().GetProperty("data"))
                     .Where(d => d.GetProperty("status").GetString() != "Succeeded")
                     .Select(d => d.TryGetProperty("reason", out var r) ? r.GetString() : "(no reason)")
                     .GroupBy(r => r).Take(5))
            Console.WriteLine($"  {reason.Count()} ended with: {reason.Key}");
        // 3. Output: one step that prints 20,000 lines as fast as it can; every line is an event in the database.
        var outputRun = await WaitForEndAsync(api, await StartAsync(api, "bench-output"), seconds: 600);
        var lines = outputRun.Count(e => e.GetProperty("kind").GetString() == "step_output");
        var stepTime = outputRun.First(e => e.GetProperty("kind").GetString() == "step_succeeded").GetProperty("at").GetDateTime()
            - outputRun.First(e => e.GetProperty("kind").GetString() == "step_started").GetProperty("at").GetDateTime();
        Console.WriteLine($"a step printing 20,000 lines: {lines} output events recorded in {stepTime.TotalSeconds:0.00} s ({lines / stepTime.TotalSeconds:0} lines/s)");
        var ok = statuses.GetValueOrDefault("Succeeded") == 200 && Measurement.Percentile(latencies, 50) <= TimeSpan.FromMilliseconds(20) && Measurement.Percentile(latencies, 99) <= TimeSpan.FromMilliseconds(100);
        Console.WriteLine(ok ? "goals met" : "goals NOT met");
        return ok ? 0 : 1;
    }

    private static async Task PublishAsync(Portal portal, HttpClient api, string name, string run)
    {
        var yaml = $"""
            apiVersion: runbooks/v1
            name: {name}
            title: Benchmark {name}
            type: maintenance
            steps:
              - id: only
                action: shell
                {run}
            """;
        (await api.PostAsync("/api/runbooks", new StringContent(yaml, Encoding.UTF8, "application/yaml"))).EnsureSuccessStatusCode();
        (await api.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { })).EnsureSuccessStatusCode();
        // The bootstrap admin wrote it; a second admin reviews it.
        var email = $"reviewer-{name}@bench.test";
        (await api.PostAsJsonAsync("/api/admin/users", new { email, password = "benchmark reviewer password", roles = new[] { "Admin" } })).EnsureSuccessStatusCode();
        var token = (await (await api.PostAsJsonAsync($"/api/admin/users/{email}/tokens", new { name })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        using var reviewer = portal.CreateClient();
        reviewer.DefaultRequestHeaders.Authorization = new("Bearer", token);
        (await reviewer.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { })).EnsureSuccessStatusCode();
    }

    private static async Task<Guid> StartAsync(HttpClient api, string name)
    {
        var response = await api.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static async Task<List<JsonElement>> WaitForEndAsync(HttpClient api, Guid id, int seconds = 60)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        var events = new List<JsonElement>();
        while (true)
        {
            var after = events.Count == 0 ? 0 : events[^1].GetProperty("seq").GetInt64();
            var page = (await api.GetFromJsonAsync<JsonElement>($"/api/executions/{id}/events?after={after}&limit=5000")).EnumerateArray().ToList();
            events.AddRange(page);
            if (events.Count > 0 && events[^1].GetProperty("kind").GetString() == "execution_finished")
                return events;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"execution {id} did not finish");
            if (page.Count < 5000)
                await Task.Delay(20);
        }
    }
}

/// <summary>The real portal in this process, configured for the benchmark.</summary>
internal sealed class Portal(IReadOnlyDictionary<string, string?> settings) : WebApplicationFactory<RunbookPortal.Web.Data.PortalDbContext>
{
    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        foreach (var (k, v) in settings)
            builder.UseSetting(k, v);
        builder.UseSetting("Bootstrap:AdminEmail", "admin@bench.test");
        builder.UseSetting("Bootstrap:AdminPassword", "benchmark admin password");
        builder.UseSetting("Bootstrap:ApiToken", "benchmark-token-0123456789abcdef0123456789abcdef");
        builder.UseSetting("Engine:MaxConcurrentExecutions", "200");
        builder.UseSetting("Engine:PollInterval", "00:00:01");
        builder.UseSetting("Logging:LogLevel:Default", "Warning");
    }
}

/// <summary>A throwaway database for one benchmark run.</summary>
internal sealed class BenchStore : IAsyncDisposable
{
    private readonly Func<Task> _drop;
    public IReadOnlyDictionary<string, string?> Settings { get; }

    private BenchStore(IReadOnlyDictionary<string, string?> settings, Func<Task> drop)
    {
        Settings = settings;
        _drop = drop;
    }

    public static async Task<BenchStore> CreateAsync(bool postgres)
    {
        if (!postgres)
        {
            var folder = Directory.CreateTempSubdirectory("rbp-bench-").FullName;
            return new BenchStore(new Dictionary<string, string?> { ["Database:Provider"] = "Sqlite", ["Database:DataDirectory"] = folder }, () =>
            {
                Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
                Directory.Delete(folder, true);
                return Task.CompletedTask;
            });
        }
        var admin = Environment.GetEnvironmentVariable("RBP_BENCH_POSTGRES") is { Length: > 0 } b ? b
            : Environment.GetEnvironmentVariable("RBP_TEST_POSTGRES") is { Length: > 0 } t ? t
            : "Host=127.0.0.1;Port=5432;Username=rbp_test;Password=rbp_test;Database=postgres";
        var name = "rbp_bench_" + Guid.NewGuid().ToString("N")[..12];
        await Sql(admin, $"CREATE DATABASE \"{name}\"");
        var connection = new Npgsql.NpgsqlConnectionStringBuilder(admin) { Database = name }.ToString();
        return new BenchStore(new Dictionary<string, string?> { ["Database:Provider"] = "Postgres", ["ConnectionStrings:Postgres"] = connection }, async () =>
        {
            Npgsql.NpgsqlConnection.ClearAllPools();
            await Sql(admin, $"DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        });
    }

    private static async Task Sql(string connection, string sql)
    {
        await using var conn = new Npgsql.NpgsqlConnection(connection);
        await conn.OpenAsync();
        await using var cmd = new Npgsql.NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    public async ValueTask DisposeAsync() => await _drop();
}
