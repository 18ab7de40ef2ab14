using System.Text.Json;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Execution;

/// <summary>The engine's port to the host, in memory: keeps every event and lets a test wait for one.</summary>
internal sealed class EventLog : IExecutionJournal
{
    /// <summary>A safety net so a broken test fails instead of hanging; never a wait for correctness.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly Lock _lock = new();
    private readonly List<ExecutionEvent> _events = [];
    private readonly List<(Func<ExecutionEvent, bool> Match, TaskCompletionSource<ExecutionEvent> Found)> _waiters = [];

    public Task RecordAsync(ExecutionEvent executionEvent, CancellationToken cancellationToken)
    {
        // Data() must work for every event the engine records; call it as the host does.
        _ = executionEvent.Data();
        lock (_lock)
        {
            _events.Add(executionEvent);
            foreach (var waiter in _waiters.Where(w => w.Match(executionEvent)).ToList())
            {
                waiter.Found.TrySetResult(executionEvent);
                _waiters.Remove(waiter);
            }
        }
        return Task.CompletedTask;
    }

    public IReadOnlyList<ExecutionEvent> Events
    {
        get
        {
            lock (_lock)
                return [.. _events];
        }
    }

    public IReadOnlyList<T> All<T>() where T : ExecutionEvent => [.. Events.OfType<T>()];

    /// <summary>The first event of type <typeparamref name="T"/> that matches, recorded already or still to come.</summary>
    public async Task<T> WaitFor<T>(Func<T, bool>? match = null) where T : ExecutionEvent
    {
        bool Matches(ExecutionEvent e) => e is T typed && (match is null || match(typed));
        TaskCompletionSource<ExecutionEvent> found;
        lock (_lock)
        {
            if (_events.FirstOrDefault(Matches) is T existing)
                return existing;
            found = new TaskCompletionSource<ExecutionEvent>(TaskCreationOptions.RunContinuationsAsynchronously);
            _waiters.Add((Matches, found));
        }
        return (T)await found.Task.WaitAsync(Patience);
    }

    /// <summary>The lines a step wrote, in order, one per line.</summary>
    public string Output(string stepId, string? stream = null) =>
        string.Join("\n", All<StepOutput>().Where(o => o.StepId == stepId && (stream is null || o.Stream == stream)).Select(o => o.Text));

    public IReadOnlyList<string> Kinds => [.. Events.Select(e => e.Kind)];
}

/// <summary>Builds runbooks, plans and runners the way the host does.</summary>
internal static class Engine
{
    /// <summary>A runbook from the YAML of its steps (and parameters), both written from column 0.</summary>
    public static RunbookDefinition Runbook(string steps, string parameters = "")
    {
        var yaml = "apiVersion: runbooks/v1\nname: engine-test\ntitle: Engine test\ntype: maintenance\n"
            + (parameters.Length == 0 ? "" : "parameters:\n" + Indent(parameters))
            + "steps:\n" + Indent(steps);
        var result = RunbookValidator.Validate(yaml);
        return result.Definition
            ?? throw new InvalidOperationException("test runbook is invalid:\n" + string.Join("\n", result.Diagnostics.Select(d => $"{d.Line}:{d.Column} {d.Path} {d.Message}")) + "\n" + yaml);
    }

    private static string Indent(string text) => string.Concat(text.Trim('\n').Split('\n').Select(line => "  " + line + "\n"));

    public static ExecutionPlan Plan(RunbookDefinition runbook, IReadOnlyDictionary<string, string>? parameters = null, bool dryRun = false) =>
        new(Guid.NewGuid(), runbook, parameters ?? new Dictionary<string, string>(), dryRun);

    /// <summary>Where executions get their own folders when a runner is made without a working directory.</summary>
    public static string RunsFolder { get; } = Path.Combine(Path.GetTempPath(), "rbp-engine-tests", "runs");

    /// <param name="workingDirectory">Where shell steps run; empty: each execution gets a folder of its own under <see cref="RunsFolder"/>.</param>
    /// <param name="shell">The shell options (their folders are taken as given).</param>
    public static ExecutionRunner Runner(
        string workingDirectory,
        TimeProvider? time = null,
        ExecutionOptions? options = null,
        HttpClient? http = null,
        int? seed = 7,
        ShellOptions? shell = null)
    {
        time ??= TimeProvider.System;
        var client = http ?? new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        shell ??= workingDirectory.Length == 0 ? new ShellOptions { RunsFolder = RunsFolder } : new ShellOptions { WorkingDirectory = workingDirectory };
        IStepExecutor[] executors =
        [
            new ShellStepExecutor(shell),
            new WaitStepExecutor(time),
            new HttpStepExecutor(() => client),
        ];
        return new ExecutionRunner(executors, time, options ?? new ExecutionOptions(), seed);
    }

    public static string DataJson(ExecutionEvent e) => e.Data().GetRawText();

    public static JsonElement Data(ExecutionEvent e) => e.Data();
}

/// <summary>A scratch folder per test, removed afterwards.</summary>
public abstract class ScratchFolder : IDisposable
{
    protected ScratchFolder()
    {
        Folder = Path.Combine(Path.GetTempPath(), "rbp-engine-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Folder);
    }

    protected string Folder { get; }

    protected string Marker(string name = "pwned") => Path.Combine(Path.GetTempPath(), $"rbp-{name}-{Guid.NewGuid():N}");

    public void Dispose()
    {
        try
        {
            Directory.Delete(Folder, recursive: true);
        }
        catch (IOException)
        {
        }
        GC.SuppressFinalize(this);
    }
}

/// <summary>Whether a process is gone: no /proc entry, or only a zombie waiting to be reaped (it runs nothing).</summary>
internal static class Processes
{
    public static bool IsGone(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state is "Z" or "X";
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>Waits (bounded) for a killed process to disappear: SIGKILL is delivered asynchronously.</summary>
    public static async Task<bool> WaitGoneAsync(int pid)
    {
        var deadline = DateTime.UtcNow + EventLog.Patience;
        while (!IsGone(pid))
        {
            if (DateTime.UtcNow > deadline)
                return false;
            await Task.Delay(10);
        }
        return true;
    }
}
