using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Npgsql;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Features.Runbooks;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// Catalog search on PostgreSQL: 10,000 runbooks in a throwaway database, then the catalog queries the page
/// makes (search, facets, paging), timed as server time (the RunbookCatalog call, all its SQL included).
/// Needs a PostgreSQL role that may create databases: RBP_BENCH_POSTGRES, else RBP_TEST_POSTGRES, else the
/// rbp_test role that tests/scripts/test.sh creates.
/// </summary>
public static class CatalogSearchBenchmark
{
    private static readonly TimeSpan Goal = TimeSpan.FromMilliseconds(100);

    public static int Run(string[] args)
    {
        var count = args.Length > 0 && int.TryParse(args[0], out var n) ? n : 10_000;
        return RunAsync(count).GetAwaiter().GetResult();
    }

    private static async Task<int> RunAsync(int count)
    {
        var admin = Environment.GetEnvironmentVariable("RBP_BENCH_POSTGRES") is { Length: > 0 } b ? b
            : Environment.GetEnvironmentVariable("RBP_TEST_POSTGRES") is { Length: > 0 } t ? t
            : "Host=127.0.0.1;Port=5432;Username=rbp_test;Password=rbp_test;Database=postgres";
        var database = "rbp_bench_" + Guid.NewGuid().ToString("N")[..12];
        await ExecuteAsync(admin, $"CREATE DATABASE \"{database}\"");
        try
        {
            var connection = new NpgsqlConnectionStringBuilder(admin) { Database = database }.ToString();
            await using var services = BuildServices(connection);
            await using (var scope = services.CreateAsyncScope())
                await scope.ServiceProvider.GetRequiredService<PortalDbContext>().Database.MigrateAsync();

            var seeding = Stopwatch.StartNew();
            await SeedAsync(services, count);
            Console.WriteLine($"Seeded {count:N0} runbooks in {seeding.Elapsed.TotalSeconds:0.0} s (PostgreSQL, database {database}).");

            var queries = new (string Label, CatalogQuery Query)[]
            {
                ("first page, no filter", new CatalogQuery()),
                ("search 'deploy'", new CatalogQuery(Search: "deploy")),
                ("search 'postgres backup'", new CatalogQuery(Search: "postgres backup")),
                ("search rare word", new CatalogQuery(Search: "kafka")),
                ("type + search, sorted by change", new CatalogQuery(Search: "restart", Type: "maintenance", Sort: "updated", Descending: true)),
                ("tag facet", new CatalogQuery(Tag: "database")),
                ("status + owner, page 20", new CatalogQuery(Status: RunbookVersionStatus.Active, Owner: "team-payments", Page: 20)),
            };

            var all = new List<TimeSpan>();
            var met = true;
            foreach (var (label, query) in queries)
            {
                var samples = await TimeAsync(services, query, warmup: 5, iterations: 60);
                all.AddRange(samples);
                Console.WriteLine($"{label}:");
                met &= Measurement.Report(samples, Goal);
            }
            all.Sort();
            Console.WriteLine($"All {all.Count} catalog requests together:");
            met &= Measurement.Report(all, Goal);
            return met ? 0 : 1;
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync(admin, $"DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)");
        }
    }

    private static ServiceProvider BuildServices(string connection)
    {
        var services = new ServiceCollection();
        services.AddLogging(l => l.SetMinimumLevel(LogLevel.Warning));
        services.AddSingleton(TimeProvider.System);
        services.AddDbContext<PortalDbContext, PostgresPortalDbContext>(o => o.UseNpgsql(connection));
        services.AddSingleton<AuditLog>();
        services.AddOptions<S3ArchiveOptions>();
        services.AddSingleton<RunbookArchiveQueue>();
        services.AddScoped<RunbookCatalog>();
        return services.BuildServiceProvider();
    }

    private static async Task<List<TimeSpan>> TimeAsync(IServiceProvider services, CatalogQuery query, int warmup, int iterations)
    {
        var samples = new List<TimeSpan>(iterations);
        for (var i = 0; i < warmup + iterations; i++)
        {
            await using var scope = services.CreateAsyncScope();
            var catalog = scope.ServiceProvider.GetRequiredService<RunbookCatalog>();
            var start = Stopwatch.GetTimestamp();
            var page = await catalog.SearchAsync(query);
            var elapsed = Stopwatch.GetElapsedTime(start);
            if (page.Total < 0)
                throw new InvalidOperationException("unreachable");
            if (i >= warmup)
                samples.Add(elapsed);
        }
        samples.Sort();
        return samples;
    }

    private static readonly string[] Types = ["deployment", "maintenance", "incident_response", "backup_restore", "scaling", "monitoring"];
    private static readonly string[] Systems = ["postgres", "redis", "kafka", "nginx", "payments-api", "checkout", "search", "billing", "auth", "inventory", "cdn", "elasticsearch"];
    private static readonly string[] Verbs = ["deploy", "restart", "backup", "restore", "scale", "rotate", "failover", "patch", "drain", "verify"];
    private static readonly string[] Teams = ["team-web", "team-payments", "team-data", "team-platform", "team-search", "team-identity"];
    private static readonly string[] Tags = ["database", "web-application", "cache", "queue", "security", "networking", "storage", "observability"];

    /// <summary>Realistic, varied runbooks: each parsed by the real validator, stored as the catalog stores them.</summary>
    private static async Task SeedAsync(IServiceProvider services, int count)
    {
        var random = new Random(42);
        const int batch = 1000;
        for (var offset = 0; offset < count; offset += batch)
        {
            await using var scope = services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            db.ChangeTracker.AutoDetectChangesEnabled = false;
            for (var i = offset; i < Math.Min(count, offset + batch); i++)
            {
                var type = Types[random.Next(Types.Length)];
                var system = Systems[random.Next(Systems.Length)];
                var verb = Verbs[random.Next(Verbs.Length)];
                var name = $"{verb}-{system}-{i:D5}";
                var yaml = $"""
                    apiVersion: runbooks/v1
                    name: {name}
                    title: {char.ToUpperInvariant(verb[0])}{verb[1..]} {system} ({i})
                    description: Standard procedure to {verb} {system} in every region, with checks before and after and a rollback path.
                    type: {type}
                    tags: [{Tags[random.Next(Tags.Length)]}, {Tags[random.Next(Tags.Length)]}, {system}]
                    owner: {Teams[random.Next(Teams.Length)]}
                    steps:
                      - id: run
                        name: {verb} {system}
                        action: shell
                        run: echo {verb} {system}
                    """;
                var definition = RunbookValidator.Validate(yaml).Definition ?? throw new InvalidOperationException($"generated runbook {name} is invalid");
                var now = DateTime.UtcNow.AddMinutes(-random.Next(0, 500_000));
                var status = random.Next(10) < 7 ? RunbookVersionStatus.Active : RunbookVersionStatus.Draft;
                var runbook = new Runbook { Id = Guid.NewGuid(), Name = name, Title = "", Type = type, CreatedAt = now, CreatedBy = "bench@portal.test", UpdatedAt = now, Status = status, LatestVersion = 1, ActiveVersion = status == RunbookVersionStatus.Active ? 1 : null };
                RunbookCatalog.ApplyCatalogFacts(runbook, definition);
                runbook.Versions.Add(new RunbookVersion { Id = Guid.NewGuid(), RunbookId = runbook.Id, Version = 1, Yaml = yaml, Status = status, Author = "bench@portal.test", CreatedAt = now, UpdatedAt = now });
                db.Runbooks.Add(runbook);
            }
            await db.SaveChangesAsync();
        }
        await using var analyze = services.CreateAsyncScope();
        await analyze.ServiceProvider.GetRequiredService<PortalDbContext>().Database.ExecuteSqlRawAsync("ANALYZE");
    }

    private static async Task ExecuteAsync(string connection, string sql)
    {
        await using var conn = new NpgsqlConnection(connection);
        await conn.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }
}
