using System.Diagnostics;
using System.Globalization;

namespace RunbookPortal.Benchmarks;

/// <summary>Times an operation: warm-up runs first, then timed runs; reports percentiles against a goal.</summary>
public static class Measurement
{
    public static IReadOnlyList<TimeSpan> Time(Action operation, int warmup, int iterations)
    {
        for (var i = 0; i < warmup; i++)
            operation();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        var samples = new TimeSpan[iterations];
        for (var i = 0; i < iterations; i++)
        {
            var start = Stopwatch.GetTimestamp();
            operation();
            samples[i] = Stopwatch.GetElapsedTime(start);
        }
        Array.Sort(samples);
        return samples;
    }

    /// <summary>The nearest-rank percentile of sorted samples.</summary>
    public static TimeSpan Percentile(IReadOnlyList<TimeSpan> sorted, double percent)
    {
        var rank = (int)Math.Ceiling(percent / 100.0 * sorted.Count);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Count - 1)];
    }

    /// <summary>Prints p50/p95/p99 (and min, mean, max) with their ratio to the goal; answers whether p95 meets it.</summary>
    public static bool Report(IReadOnlyList<TimeSpan> sorted, TimeSpan goal)
    {
        var rows = new (string Label, TimeSpan Value)[]
        {
            ("min", sorted[0]),
            ("p50", Percentile(sorted, 50)),
            ("p95", Percentile(sorted, 95)),
            ("p99", Percentile(sorted, 99)),
            ("max", sorted[^1]),
            ("mean", TimeSpan.FromTicks((long)sorted.Average(s => s.Ticks))),
        };
        foreach (var (label, value) in rows)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {label,-5} {value.TotalMilliseconds,9:0.000} ms   {value / goal,6:0.000} × goal"));
        }
        var p95 = Percentile(sorted, 95);
        var met = p95 < goal;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  goal  < {goal.TotalMilliseconds:0} ms: {(met ? "met" : "NOT met")} (p95 is {p95 / goal:0.000} of the goal, {goal / p95:0.0}× headroom)"));
        return met;
    }
}
