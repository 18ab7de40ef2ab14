using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// What a user waits for: a 100-step runbook started through the REST API of a real portal process, until the API
/// reports it Succeeded — on SQLite and on PostgreSQL, side by side in one run with the floor of any engine that
/// isolates each step in a fresh process: a bash loop starting <c>setsid bash --noprofile --norc -e -o pipefail -c
/// '&lt;step&gt;'</c> per step. Rounds alternate floor, SQLite, PostgreSQL so that the machine's drift hits all three
/// alike; the medians are compared. When the API says Succeeded, every event of the run must already be readable
/// (the benchmark counts them): the portal runs with its durability rule, nothing is buffered.
/// </summary>
public static class EnginePathBenchmark
{
    private const int Steps = 100;

    /// <summary>Rounds not counted: the portal is a long-running server, and its code is compiled as it first runs (tiered JIT).</summary>
    private const int WarmUp = 3;

    /// <summary>The step kinds, each with its goal (portal ÷ floor), if it has one.</summary>
    private static readonly (string Name, string Run, double? Goal)[] Kinds =
    [
        ("/bin/true", "/bin/true", 1.25),
        ("date -u +%FT%TZ >/dev/null", "date -u +%FT%TZ >/dev/null", null),
        ("sleep 0.1", "sleep 0.1", 1.05),
    ];

    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(string[] args)
    {
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        var rounds = args.Select(a => int.TryParse(a, out var n) ? n : 0).FirstOrDefault(n => n > 0, 9);
        var onlySqlite = args.Contains("sqlite");
        await using var sqlite = await BenchStore.CreateAsync(postgres: false);
        await using var postgresStore = onlySqlite ? null : await BenchStore.CreateAsync(postgres: true);
        var portals = new List<(string Store, BenchPortal Node)>();
        try
        {
            portals.Add(("SQLite", await BenchPortal.StartAsync(sqlite)));
            if (postgresStore is not null)
                portals.Add(("PostgreSQL", await BenchPortal.StartAsync(postgresStore)));
            foreach (var (_, node) in portals)
            {
                for (var k = 0; k < Kinds.Length; k++)
                    await node.PublishAsync($"bench-path-{k}", StepsYaml($"bench-path-{k}", Kinds[k].Run));
            }

            Console.WriteLine($"A {Steps}-step runbook through the API of a real portal process (request → Succeeded), median of {rounds} rounds after {WarmUp} warm-up rounds,");
            Console.WriteLine("against the floor: a bash loop of `setsid bash --noprofile --norc -e -o pipefail -c '<step>'`.");
            var ok = true;
            for (var k = 0; k < Kinds.Length; k++)
            {
                var (name, run, goal) = Kinds[k];
                var floor = new List<TimeSpan>();
                var portal = portals.ToDictionary(p => p.Store, _ => new List<TimeSpan>());
                for (var round = -WarmUp; round < rounds; round++)
                {
                    var f = await FloorAsync(run);
                    var times = new Dictionary<string, TimeSpan>();
                    foreach (var (store, node) in portals)
                        times[store] = await RunAsync(node, $"bench-path-{k}");
                    if (round < 0)
                        continue; // warm-up
                    floor.Add(f);
                    foreach (var (store, t) in times)
                        portal[store].Add(t);
                }
                var floorMedian = Median(floor);
                Console.WriteLine();
                Console.WriteLine($"  {name}");
                Console.WriteLine($"    {"floor",-11} {floorMedian.TotalMilliseconds,8:0} ms   {floorMedian.TotalMilliseconds / Steps,6:0.00} ms/step");
                foreach (var (store, samples) in portal)
                {
                    var median = Median(samples);
                    var ratio = median / floorMedian;
                    var met = goal is null || ratio <= goal;
                    ok &= met;
                    Console.WriteLine($"    {store,-11} {median.TotalMilliseconds,8:0} ms   {median.TotalMilliseconds / Steps,6:0.00} ms/step   {ratio,5:0.00}× the floor"
                        + (goal is { } g ? $"   goal ≤ {g:0.00}×: {(met ? "met" : "NOT met")}" : "")
                        + $"   (rounds {Min(samples):0}–{Max(samples):0} ms)");
                }
            }
            Console.WriteLine();
            Console.WriteLine(ok ? "goals met" : "goals NOT met");
            return ok ? 0 : 1;
        }
        catch
        {
            foreach (var (store, node) in portals)
                Console.Error.WriteLine($"----- {store} portal output -----\n{node.Process.Log}");
            throw;
        }
        finally
        {
            foreach (var (_, node) in portals)
                await node.DisposeAsync();
        }
    }

    private static string StepsYaml(string name, string run)
    {
        var yaml = new StringBuilder($"""
            apiVersion: runbooks/v1
            name: {name}
            title: Benchmark {name}
            type: maintenance
            steps:

            """);
        for (var i = 1; i <= Steps; i++)
            yaml.Append(CultureInfo.InvariantCulture, $"  - id: step-{i}\n    action: shell\n    run: {JsonSerializer.Serialize(run)}\n");
        return yaml.ToString();
    }

    /// <summary>The floor: one bash loop, a fresh session leader bash per step, as the portal starts them.</summary>
    private static async Task<TimeSpan> FloorAsync(string step)
    {
        var info = new ProcessStartInfo("bash") { UseShellExecute = false, RedirectStandardInput = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add($"for i in $(seq {Steps}); do setsid bash --noprofile --norc -e -o pipefail -c \"$1\" || exit; done");
        info.ArgumentList.Add("floor");
        info.ArgumentList.Add(step);
        var clock = Stopwatch.StartNew();
        using var process = Process.Start(info)!;
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"The floor loop of '{step}' exited with {process.ExitCode}.");
        return clock.Elapsed;
    }

    private static TimeSpan Median(List<TimeSpan> samples)
    {
        var sorted = samples.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static double Min(List<TimeSpan> samples) => samples.Min().TotalMilliseconds;
    private static double Max(List<TimeSpan> samples) => samples.Max().TotalMilliseconds;

    /// <summary>
    /// Starts the runbook and polls its status (slowly, so that polling does not take the machine's time); answers
    /// from before the request to the time the run's end was recorded, after checking every event is recorded.
    /// </summary>
    private static async Task<TimeSpan> RunAsync(BenchPortal portal, string name)
    {
        var Api = portal.Api;
        var requested = DateTime.UtcNow;
        var clock = Stopwatch.StartNew();
        var response = await Api.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } });
        response.EnsureSuccessStatusCode();
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        while (true)
        {
            var execution = await Api.GetFromJsonAsync<JsonElement>($"/api/executions/{id}");
            var status = execution.GetProperty("status").GetString();
            if (status == "Succeeded")
                break;
            if (status is not ("Queued" or "Running"))
                throw new InvalidOperationException($"Execution {id} of {name} ended {status}: {execution}");
            if (clock.Elapsed > TimeSpan.FromMinutes(5))
                throw new TimeoutException($"Execution {id} of {name} did not end in 5 minutes.");
            await Task.Delay(200);
        }
        var finished = await CheckEveryEventRecordedAsync(Api, id);
        return finished - requested;
    }

    /// <summary>
    /// queued, claimed, started, a started and a succeeded per step, finished: read after Succeeded was seen, in
    /// order, with no gap in the seqs.
    /// </summary>
    /// <returns>When the end was recorded (the server's clock is this machine's).</returns>
    private static async Task<DateTime> CheckEveryEventRecordedAsync(HttpClient Api, Guid id)
    {
        var events = (await Api.GetFromJsonAsync<JsonElement>($"/api/executions/{id}/events?after=0&limit=5000")).EnumerateArray().ToList();
        var kinds = events.Select(e => e.GetProperty("kind").GetString()).ToList();
        var seqs = events.Select(e => e.GetProperty("seq").GetInt64()).ToList();
        var expected = 4 + 2 * Steps;
        if (events.Count != expected || kinds.Count(k => k == "step_succeeded") != Steps || kinds[^1] != "execution_finished"
            || !seqs.SequenceEqual(Enumerable.Range(1, events.Count).Select(i => (long)i)))
            throw new InvalidOperationException($"Execution {id} was reported Succeeded with {events.Count} events recorded, not the {expected} it had: {string.Join(", ", kinds)}");
        return events[^1].GetProperty("at").GetDateTime().ToUniversalTime();
    }

}
