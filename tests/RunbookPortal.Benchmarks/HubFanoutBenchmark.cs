using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// Live output to many watchers, through a real portal process and /hubs/executions over real WebSockets, every event
/// durable (the portal's own journal and database), clients and portal on this machine:
/// <list type="number">
/// <item><b>Latency</b>: a step prints a line every 20 ms for 10 s; each event's latency is from its server timestamp
/// (when the portal took the line in) to when the last of N clients received it. Baseline: the same run with one client.</item>
/// <item><b>Throughput</b>: a step prints 5,000 lines a second for 20 s, watched by 100 clients (<c>SubscribeBatches</c>:
/// as many events a message as are ready): each must receive every line, in order, none dropped; the run's own duration is compared with the same run watched by no one.</item>
/// </list>
/// </summary>
public static class HubFanoutBenchmark
{
    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    /// <summary>
    /// What a latency client reads of each event: the 1,000 clients share the portal's two cores, so each reads only
    /// what it measures (the rest of the message is skipped), as 1,000 watchers on their own machines would not cost it.
    /// </summary>
    private sealed record Stamp(long Seq, DateTime At, string Kind);

    /// <summary>What a watcher of the flood checks of each event (the rest of it is skipped when read).</summary>
    private sealed record Brief(long Seq, string Kind);

    private static async Task<int> RunAsync(string[] args)
    {
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        var numbers = args.Select(a => int.TryParse(a, out var n) ? n : 0).Where(n => n > 0).ToList();
        var clients = numbers.ElementAtOrDefault(0) is > 0 and var c ? c : 1000;
        var watchers = numbers.ElementAtOrDefault(1) is > 0 and var w ? w : 100;
        var postgres = args.Contains("postgres");
        await using var store = await BenchStore.CreateAsync(postgres);
        // 100,000 lines are more than the default 1 MiB a step may keep.
        await using var portal = await BenchPortal.StartAsync(store, new Dictionary<string, string> { ["Engine:MaxOutputBytesPerStep"] = "16777216" });
        try
        {
            await portal.PublishAsync("bench-latency", Runbook("bench-latency", "for i in $(seq 1 500); do echo \"tick $i\"; sleep 0.02; done"));
            // 5,000 lines a second: 100 lines every 20 ms (the printing itself is well under that), for 20 s.
            await portal.PublishAsync("bench-flood", Runbook("bench-flood", "for s in $(seq 1 1000); do seq -f \"line $s.%g\" 1 100; sleep 0.02; done"));

            Console.WriteLine($"Live output through /hubs/executions of a real portal process ({(postgres ? "PostgreSQL" : "SQLite")}), real WebSockets, every event durable.");
            Console.WriteLine();
            Console.WriteLine("  Latency, a line every 20 ms for 10 s: from the event's server timestamp to the last client's receipt");
            var single = await LatencyAsync(portal, 1);
            var many = await LatencyAsync(portal, clients);
            Console.WriteLine($"    {"clients",8} {"events",7} {"p50",9} {"p99",9} {"max",9}");
            foreach (var (n, r) in new[] { (1, single), (clients, many) })
                Console.WriteLine($"    {n,8} {r.Events,7} {r.P50,7:0.0} ms {r.P99,7:0.0} ms {r.Max,7:0.0} ms");
            var latencyMet = many.P99 <= 250;
            Console.WriteLine($"    {clients} clients: p50 {many.P50 / Math.Max(single.P50, 0.1):0.0}× and p99 {many.P99 / Math.Max(single.P99, 0.1):0.0}× one client's; goal p99 ≤ 250 ms: {(latencyMet ? "met" : "NOT met")}");

            Console.WriteLine();
            Console.WriteLine($"  Throughput, 5,000 lines a second for 20 s (100,000 lines), {watchers} watchers");
            var alone = await FloodAsync(portal, 0);
            var watched = await FloodAsync(portal, watchers);
            Console.WriteLine($"    run alone {alone.Run.TotalSeconds:0.0} s; watched by {watchers}: {watched.Run.TotalSeconds:0.0} s ({watched.Run / alone.Run:0.00}×)");
            Console.WriteLine($"    lines written {watched.Lines:N0}; every watcher received: min {watched.MinReceived:N0}, max {watched.MaxReceived:N0}; dropped watchers {watched.Dropped}; last line to last watcher {watched.Tail.TotalMilliseconds:0} ms after the run ended");
            var noneLost = watched.MinReceived == watched.Lines && watched.Dropped == 0;
            Console.WriteLine($"    goal none lost: {(noneLost ? "met" : "NOT met")}");
            Console.WriteLine();
            Console.WriteLine(latencyMet && noneLost ? "goals met" : "goals NOT met");
            return latencyMet && noneLost ? 0 : 1;
        }
        catch
        {
            Console.Error.WriteLine($"----- portal output -----\n{portal.Process.Log}");
            throw;
        }
    }

    private static string Runbook(string name, string run) => $"""
        apiVersion: runbooks/v1
        name: {name}
        title: Benchmark {name}
        type: maintenance
        steps:
          - id: out
            action: shell
            timeout: 10m
            run: {JsonSerializer.Serialize(run)}
        """;

    private static HubConnection Connect(BenchPortal portal) =>
        new HubConnectionBuilder()
            .WithUrl(new Uri(portal.Api.BaseAddress!, "/hubs/executions"), o =>
            {
                o.Transports = HttpTransportType.WebSockets;
                o.SkipNegotiation = true;
                o.AccessTokenProvider = () => Task.FromResult<string?>(portal.Api.DefaultRequestHeaders.Authorization!.Parameter);
            })
            .Build();

    /// <summary>Connections closed while in use (a client that fell behind is dropped by the portal).</summary>
    private static int _closed;

    private static async Task<List<HubConnection>> ConnectAsync(BenchPortal portal, int count)
    {
        var connections = new List<HubConnection>();
        Interlocked.Exchange(ref _closed, 0);
        for (var i = 0; i < count; i += 50)
        {
            var batch = Enumerable.Range(0, Math.Min(50, count - i)).Select(_ => Connect(portal)).ToList();
            foreach (var hub in batch)
                hub.Closed += _ => { Interlocked.Increment(ref _closed); return Task.CompletedTask; };
            await Task.WhenAll(batch.Select(h => h.StartAsync()));
            connections.AddRange(batch);
        }
        return connections;
    }

    private sealed record Latency(int Events, double P50, double P99, double Max);

    private static async Task<Latency> LatencyAsync(BenchPortal portal, int count)
    {
        var connections = await ConnectAsync(portal, count);
        try
        {
            // The run is started first (queued, it waits a moment for the worker), then every client subscribes from seq 0:
            // what they missed comes from the database, and only events after every client is live are measured.
            var id = await StartAsync(portal, "bench-latency");
            var lastArrival = new ConcurrentDictionary<long, long>(); // seq → latest receipt (ticks)
            var stamps = new ConcurrentDictionary<long, DateTime>();
            var finished = new CountdownEvent(count);
            var live = DateTime.MaxValue;
            foreach (var hub in connections)
            {
                hub.On<Stamp>("ExecutionEvent", e =>
                {
                    var now = DateTime.UtcNow.Ticks;
                    stamps.TryAdd(e.Seq, e.At.ToUniversalTime());
                    lastArrival.AddOrUpdate(e.Seq, now, (_, t) => Math.Max(t, now));
                    if (e.Kind == "execution_finished")
                        finished.Signal();
                });
            }
            await Task.WhenAll(connections.Select(h => h.InvokeAsync("Subscribe", id, 0L)));
            live = DateTime.UtcNow;
            if (!finished.Wait(TimeSpan.FromMinutes(2)))
                throw new TimeoutException($"{finished.CurrentCount} of {count} clients did not see execution {id} finish; {_closed} connections closed.");
            var latencies = stamps.Where(s => s.Value > live.AddMilliseconds(200))
                .Select(s => (new DateTime(lastArrival[s.Key], DateTimeKind.Utc) - s.Value).TotalMilliseconds)
                .Order().ToList();
            return new Latency(latencies.Count, Percentile(latencies, 0.50), Percentile(latencies, 0.99), latencies.Count == 0 ? 0 : latencies[^1]);
        }
        finally
        {
            await Task.WhenAll(connections.Select(h => h.DisposeAsync().AsTask()));
        }
    }

    private sealed record Flood(TimeSpan Run, int Lines, int MinReceived, int MaxReceived, int Dropped, TimeSpan Tail);

    private static async Task<Flood> FloodAsync(BenchPortal portal, int count)
    {
        var connections = await ConnectAsync(portal, count);
        try
        {
            var id = await StartAsync(portal, "bench-flood");
            var received = new int[count];
            var ordered = new bool[count];
            Array.Fill(ordered, true);
            var lastSeq = new long[count];
            var dropped = 0;
            var finished = new CountdownEvent(count);
            long lastReceipt = 0;
            for (var i = 0; i < count; i++)
            {
                var k = i;
                connections[i].On<Brief[]>("ExecutionEvents", batch =>
                {
                    foreach (var e in batch)
                    {
                        if (e.Seq != lastSeq[k] + 1)
                            ordered[k] = false;
                        lastSeq[k] = e.Seq;
                        if (e.Kind == "step_output")
                            received[k]++;
                        if (e.Kind == "execution_finished")
                            finished.Signal();
                    }
                    Interlocked.Exchange(ref lastReceipt, DateTime.UtcNow.Ticks);
                });
                connections[i].On<JsonElement>("CatchUp", _ => { Interlocked.Increment(ref dropped); finished.Signal(); });
            }
            await Task.WhenAll(connections.Select(h => h.InvokeAsync("SubscribeBatches", id, 0L)));
            var execution = await WaitForEndAsync(portal, id);
            if (count > 0 && !finished.Wait(TimeSpan.FromMinutes(2)))
                Console.WriteLine($"    {finished.CurrentCount} watchers did not see the run end within 2 minutes of it (received so far: min {received.Min():N0}, max {received.Max():N0}; told to catch up {dropped}; connections closed {_closed})");
            var events = await AllEventsAsync(portal, id);
            var lines = events.Count(e => e.GetProperty("kind").GetString() == "step_output");
            var started = execution.GetProperty("startedAt").GetDateTime().ToUniversalTime();
            var ended = execution.GetProperty("finishedAt").GetDateTime().ToUniversalTime();
            if (ordered.Any(o => !o))
                throw new InvalidOperationException("A watcher received events out of order or with a gap.");
            return new Flood(ended - started, lines, count == 0 ? lines : received.Min(), count == 0 ? lines : received.Max(), dropped,
                count == 0 ? TimeSpan.Zero : new DateTime(Interlocked.Read(ref lastReceipt), DateTimeKind.Utc) - ended);
        }
        finally
        {
            await Task.WhenAll(connections.Select(h => h.DisposeAsync().AsTask()));
        }
    }

    private static async Task<Guid> StartAsync(BenchPortal portal, string name)
    {
        var response = await portal.Api.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } });
        response.EnsureSuccessStatusCode();
        return (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
    }

    private static async Task<JsonElement> WaitForEndAsync(BenchPortal portal, Guid id)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var execution = await portal.Api.GetFromJsonAsync<JsonElement>($"/api/executions/{id}");
            var status = execution.GetProperty("status").GetString();
            if (status == "Succeeded")
                return execution;
            if (status is not ("Queued" or "Running"))
                throw new InvalidOperationException($"Execution {id} ended {status}: {execution}");
            if (clock.Elapsed > TimeSpan.FromMinutes(5))
                throw new TimeoutException($"Execution {id} did not end in 5 minutes.");
            await Task.Delay(500);
        }
    }

    private static async Task<List<JsonElement>> AllEventsAsync(BenchPortal portal, Guid id)
    {
        var all = new List<JsonElement>();
        while (true)
        {
            var after = all.Count == 0 ? 0 : all[^1].GetProperty("seq").GetInt64();
            var page = (await portal.Api.GetFromJsonAsync<JsonElement>($"/api/executions/{id}/events?after={after}&limit=5000")).EnumerateArray().ToList();
            if (page.Count == 0)
                return all;
            all.AddRange(page);
        }
    }

    private static double Percentile(List<double> sorted, double p) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Count) - 1, 0, sorted.Count - 1)];
}
