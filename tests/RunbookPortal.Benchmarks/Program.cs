using RunbookPortal.Benchmarks;

// Each benchmark is a subcommand: `dotnet run -c Release --project tests/RunbookPortal.Benchmarks -- <name> [options]`.
// Add one by writing a class with a static Run(string[] args) and registering it here.
var benchmarks = new Dictionary<string, (string Description, Func<string[], int> Run)>(StringComparer.Ordinal)
{
    ["validate"] = ("validate a realistic 500-step runbook (goal: < 50 ms)", ValidateBenchmark.Run),
    ["engine-host"] = ("queued → first step latency and 200 concurrent executions in the real host (add 'postgres' for PostgreSQL)", EngineHostBenchmark.Run),
    ["engine-path"] = ("a 100-step runbook through the API of a real portal process on SQLite and PostgreSQL, against a bash loop of fresh setsid bash per step (goal: ≤ 1.25× for /bin/true, ≤ 1.05× for sleep 0.1; add a number of rounds, or sqlite)", EnginePathBenchmark.Run),
    ["hub-fanout"] = ("live output through /hubs/executions of a real portal: event → 1,000 clients latency (goal p99 ≤ 250 ms) and 5,000 lines/s for 20 s to 100 watchers, none lost (add numbers of clients and watchers, or postgres)", HubFanoutBenchmark.Run),
    ["page-open"] = ("open the execution page of a finished 100,000-line run in Chromium until its tail is painted, against a 100-line run (goal < 1 s; add a number of rounds, or postgres)", PageOpenBenchmark.Run),
    ["catalog-search"] = ("search a catalog of 10,000 runbooks on PostgreSQL (goal: < 100 ms server time)", CatalogSearchBenchmark.Run),
};

if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var benchmark))
{
    Console.Error.WriteLine(args.Length == 0 ? "Name a benchmark:" : $"Unknown benchmark '{args[0]}'. Benchmarks:");
    foreach (var (name, (description, _)) in benchmarks)
        Console.Error.WriteLine($"  {name,-16} {description}");
    return 2;
}

return benchmark.Run(args[1..]);
