using System.Diagnostics;
using System.Globalization;
using System.Text;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// <c>engine-shell [--steps N] [--rounds N] [--only &lt;command prefix&gt;]</c>: a runbook of N trivial shell steps (default 100) run by the
/// <see cref="ExecutionRunner"/> — each step one external command, which the execution's bash runs as a job of its
/// own (a process group), output streamed, events recorded to a journal that does no work — side by side with
/// <c>bash -e</c> running the same N commands in one script. Three workloads: an external command that does nothing
/// (<c>/bin/true</c>: pure overhead), a small real command (<c>date</c>) and a 10 ms command (<c>sleep 0.01</c>).
/// Rounds alternate; the medians are compared. Goal from issue 4: the engine within 1.5× of bash. More figures place
/// it: the same steps written as scripts (a comment is enough), which run in a forked subshell each; one
/// <c>setsid bash</c> per command (how steps ran before the shell per execution); the shell executor without the
/// runner; and one bash running each command in a subshell as a job of its own (<c>set -m; ( … )</c> under
/// <c>bash -e</c>) — the floor of the subshell, without any of the round trips an engine that records each step
/// before starting the next must make.
/// </summary>
public static class EngineShellBenchmark
{
    private const double Goal = 1.5;

    public static int Run(string[] args)
    {
        var steps = Option(args, "--steps", 100);
        var rounds = Option(args, "--rounds", 15);
        var only = Array.IndexOf(args, "--only") is var at and >= 0 && at + 1 < args.Length ? args[at + 1] : null;
        return RunAsync(steps, rounds, only).GetAwaiter().GetResult();
    }

    /// <summary>Rounds run first and not counted: the JIT compiles the engine's hot paths again, optimised, after a few of them.</summary>
    private const int WarmUpRounds = 3;

    private static async Task<int> RunAsync(int steps, int rounds, string? only)
    {
        var folder = Path.Combine(Path.GetTempPath(), "rbp-engine-shell-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        try
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"engine-shell: {steps} shell steps, {rounds} rounds (after {WarmUpRounds} warm-up rounds), {Environment.ProcessorCount} CPUs; medians compared"));
            var met = true;
            foreach (var command in new[] { "/bin/true", "date -u +%FT%TZ >/dev/null", "sleep 0.01" }.Where(c => only is null || c.StartsWith(only, StringComparison.Ordinal)))
                met &= await CompareAsync(command, steps, rounds, folder);
            return met ? 0 : 1;
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static async Task<bool> CompareAsync(string command, int steps, int rounds, string folder)
    {
        var runbook = Runbook(command, steps);
        var scriptRunbook = Runbook(command + " # a script", steps);
        var script = "set -e -o pipefail\n" + string.Concat(Enumerable.Repeat(command + "\n", steps));
        var executor = new ShellStepExecutor(new ShellOptions { WorkingDirectory = folder });
        var runner = new ExecutionRunner([executor], TimeProvider.System, new ExecutionOptions());

        var engine = new List<TimeSpan>();
        var scripts = new List<TimeSpan>();
        var engineCpu = new List<TimeSpan>();
        var bash = new List<TimeSpan>();
        var floor = new List<TimeSpan>();
        var alone = new List<TimeSpan>();
        var subshells = new List<TimeSpan>();
        var subshellScript = "set -m\n" + string.Concat(Enumerable.Repeat($"( set +m -e; {command}\n) </dev/null\n", steps));
        for (var round = 0; round < WarmUpRounds + rounds; round++)
        {
            var cpu = Process.GetCurrentProcess().TotalProcessorTime;
            var e = await TimeEngineAsync(runner, runbook, steps);
            cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu;
            var b = await TimeBashAsync(script, folder);
            var sc = await TimeEngineAsync(runner, scriptRunbook, steps);
            var f = await TimeBashPerCommandAsync(command, steps, folder);
            var a = await TimeExecutorAsync(executor, runbook);
            var s = await TimeBashAsync(subshellScript, folder);
            if (round < WarmUpRounds)
                continue; // JIT tiers, page cache
            alone.Add(a);
            subshells.Add(s);
            engine.Add(e);
            scripts.Add(sc);
            engineCpu.Add(cpu);
            bash.Add(b);
            floor.Add(f);
        }

        var engineMedian = Median(engine);
        var bashMedian = Median(bash);
        var ratio = engineMedian / bashMedian;
        Console.WriteLine($"`{command}` × {steps}:");
        Line("engine", engine, steps);
        Line("  its CPU in the portal", engineCpu, steps);
        Line("engine, each a script", scripts, steps);
        Line("bash -e, one script", bash, steps);
        Line("one bash per command", floor, steps);
        Line("shell executor alone", alone, steps);
        Line("one bash, job per command", subshells, steps);
        var jobs = Median(subshells);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  a subshell in a process group per step costs {jobs / bashMedian:0.00}× bash -e by itself; each step as a script (in such a subshell) is {Median(scripts) / bashMedian:0.00}× bash -e; the engine saves {(Median(floor) - engineMedian).TotalMilliseconds / steps:0.00} ms per step against a bash per step"));
        var met = ratio <= Goal;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  engine / bash -e: {ratio:0.00}× (goal ≤ {Goal:0.0}×): {(met ? "met" : "NOT met")}; {(engineMedian - bashMedian).TotalMilliseconds / steps:0.00} ms per step more than one script"));
        return met;
    }

    private static async Task<TimeSpan> TimeEngineAsync(ExecutionRunner runner, RunbookDefinition runbook, int steps)
    {
        var journal = new CountingJournal();
        using var control = new ExecutionControl();
        var plan = new ExecutionPlan(Guid.NewGuid(), runbook, new Dictionary<string, string>(), DryRun: false);
        var start = Stopwatch.GetTimestamp();
        var outcome = await runner.RunAsync(plan, journal, control, CancellationToken.None);
        var elapsed = Stopwatch.GetElapsedTime(start);
        if (outcome.Status != ExecutionStatus.Succeeded || journal.Count < steps * 2 + 2)
            throw new InvalidOperationException($"the benchmark runbook did not succeed: {outcome}");
        return elapsed;
    }

    /// <summary>The steps through the shell executor alone, one after another in one execution's shell: no runner, no events.</summary>
    private static async Task<TimeSpan> TimeExecutorAsync(ShellStepExecutor executor, RunbookDefinition runbook)
    {
        var executionId = Guid.NewGuid();
        var values = new StepTemplateValues(new Dictionary<string, string>(), new Dictionary<string, IReadOnlyDictionary<string, string>>());
        var start = Stopwatch.GetTimestamp();
        foreach (var step in runbook.Steps)
        {
            var result = await executor.ExecuteAsync(new StepContext(executionId, step, 1, false, values, (_, _) => ValueTask.CompletedTask), CancellationToken.None);
            if (!result.Succeeded)
                throw new InvalidOperationException($"step {step.Id} failed: {result.Error}");
        }
        var elapsed = Stopwatch.GetElapsedTime(start);
        await executor.ReleaseAsync(executionId, final: true);
        return elapsed;
    }

    private static void Line(string label, List<TimeSpan> samples, int steps)
    {
        var median = Median(samples);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {label,-25} median {median.TotalMilliseconds,8:0.0} ms  ({median.TotalMilliseconds / steps:0.00} ms/step)   rounds: {Rounds(samples)}"));
    }

    /// <summary>The floor of a process per step: <c>setsid bash -e -o pipefail -c &lt;command&gt;</c> for each command, output read, nothing else.</summary>
    private static async Task<TimeSpan> TimeBashPerCommandAsync(string command, int steps, string folder)
    {
        var start = Stopwatch.GetTimestamp();
        for (var i = 0; i < steps; i++)
        {
            using var process = Process.Start(new ProcessStartInfo("/usr/bin/setsid", ["bash", "-e", "-o", "pipefail", "-c", command])
            {
                WorkingDirectory = folder,
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            await Task.WhenAll(stdout, stderr);
        }
        return Stopwatch.GetElapsedTime(start);
    }

    private static async Task<TimeSpan> TimeBashAsync(string script, string folder)
    {
        var start = Stopwatch.GetTimestamp();
        using var process = Process.Start(new ProcessStartInfo("bash", ["-e", "-o", "pipefail", "-c", script])
        {
            WorkingDirectory = folder,
            UseShellExecute = false,
        })!;
        await process.WaitForExitAsync();
        var elapsed = Stopwatch.GetElapsedTime(start);
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"bash exited with {process.ExitCode}");
        return elapsed;
    }

    private static RunbookDefinition Runbook(string command, int steps)
    {
        var yaml = new StringBuilder("apiVersion: runbooks/v1\nname: engine-shell-bench\ntitle: Engine shell benchmark\ntype: maintenance\nsteps:\n");
        for (var i = 0; i < steps; i++)
            yaml.Append(CultureInfo.InvariantCulture, $"  - id: step-{i:D3}\n    action: shell\n    run: |\n      {command}\n");
        var result = RunbookValidator.Validate(yaml.ToString());
        return result.Definition ?? throw new InvalidOperationException("the generated runbook is invalid: " + result.Diagnostics[0].Message);
    }

    private static TimeSpan Median(List<TimeSpan> samples)
    {
        var sorted = samples.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Rounds(List<TimeSpan> samples) =>
        string.Join(" ", samples.Select(s => s.TotalMilliseconds.ToString("0", CultureInfo.InvariantCulture)));

    private static int Option(string[] args, string name, int fallback)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length && int.TryParse(args[index + 1], NumberStyles.None, CultureInfo.InvariantCulture, out var value) && value > 0
            ? value
            : fallback;
    }

    /// <summary>The least a journal can do: count.</summary>
    private sealed class CountingJournal : IExecutionJournal
    {
        private int _count;

        public int Count => _count;

        public Task RecordAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _count);
            return Task.CompletedTask;
        }
    }
}
