using System.Diagnostics;
using System.Runtime.ExceptionServices;
using System.Text;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>How this node runs <c>shell</c> steps.</summary>
public sealed record ShellOptions
{
    /// <summary>The shell; it is run as <c>bash -e -o pipefail -c &lt;script&gt;</c>.</summary>
    public string Shell { get; init; } = "bash";

    /// <summary>
    /// Where steps run; a step's relative <c>working_directory</c> is taken from here. When not set, each execution
    /// gets a folder of its own under the temp folder (<c>runbookportal/&lt;executionId&gt;</c>), shared by its steps.
    /// </summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Extra environment variables for every step.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>
    /// Whether steps see the whole environment of the portal process. Off by default: the portal's own settings
    /// (connection strings, bootstrap passwords) are not a runbook's business. Steps always get
    /// <see cref="PassedThrough"/> and <see cref="Environment"/>.
    /// </summary>
    public bool InheritEnvironment { get; init; }

    /// <summary>The variables of the portal process a step always sees.</summary>
    public static IReadOnlyList<string> PassedThrough { get; } =
        ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOSTNAME"];
}

/// <summary>
/// Runs a <c>shell</c> step: <c>bash -e -o pipefail -c &lt;script&gt;</c> in a process group of its own.
/// <list type="bullet">
/// <item>Templates in <c>run</c> are never pasted into the script: each parameter is the environment variable
/// <c>RBP_PARAM_&lt;NAME&gt;</c>, each earlier output <c>RBP_STEP_&lt;ID&gt;_&lt;NAME&gt;</c> (upper case, '-' as '_'),
/// and a template is replaced by a quoted reference to it (see <see cref="ShellQuoting"/>).</item>
/// <item>The step's <c>env</c> values are rendered as plain text into their variables.</item>
/// <item>stdout and stderr are read at once and streamed line by line; all of it is read to the end, only the
/// first <see cref="StepContext.MaxOutputBytes"/> is kept.</item>
/// <item>On timeout or cancel the whole process group is killed; so are processes still running when bash
/// exits: a step's processes do not outlive it.</item>
/// </list>
/// </summary>
public sealed class ShellStepExecutor(ShellOptions options) : IStepExecutor
{
    /// <summary>How long to keep reading output after the step's processes are gone (a process outside the group may hold the pipes).</summary>
    private static readonly TimeSpan DrainGrace = TimeSpan.FromSeconds(5);

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    public string Action => StepActions.Shell;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var shell = context.Step.Shell ?? throw new ArgumentException($"step '{context.Step.Id}' is not a shell step", nameof(context));

        string script;
        string workingDirectory;
        Dictionary<string, string> variables;
        try
        {
            variables = TemplateVariables(context.Values, out var variableFor);
            script = ShellQuoting.RenderScript(shell.Run, variableFor);
            workingDirectory = WorkingDirectory(context, shell);
            foreach (var (name, value) in shell.Env)
                variables.TryAdd(name, context.Values.Render(value));
        }
        catch (StepTemplateException ex)
        {
            return new StepResult(false, "", Error: ex.Message);
        }
        if (!Directory.Exists(workingDirectory))
            return new StepResult(false, "", Error: $"the working directory {workingDirectory} does not exist");

        var start = ProcessTree.StartInfo(options.Shell, ["-e", "-o", "pipefail", "-c", script, "rbp-" + context.Step.Id]);
        start.WorkingDirectory = workingDirectory;
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.StandardOutputEncoding = Utf8;
        start.StandardErrorEncoding = Utf8;
        SetEnvironment(start, variables);

        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new StepResult(false, "", Error: $"could not start {options.Shell}: {ex.Message}");
        }
        process.StandardInput.Close(); // a step reads no input: it gets end-of-file, not the portal's stdin

        var captured = new CappedLines(context.MaxOutputBytes);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        ExceptionDispatchInfo? outputFailure = null;
        async Task PumpAsync(StreamReader reader, string stream)
        {
            var splitter = new LineSplitter();
            var lines = new List<string>();
            var buffer = new char[4096];
            try
            {
                while (true)
                {
                    var read = await reader.ReadAsync(buffer.AsMemory(), CancellationToken.None).ConfigureAwait(false);
                    if (read == 0)
                    {
                        if (splitter.Flush() is { } last)
                            lines.Add(last);
                    }
                    else
                    {
                        splitter.Append(buffer.AsSpan(0, read), lines);
                    }
                    foreach (var line in lines)
                    {
                        captured.Add(line);
                        if (outputFailure is null)
                            await context.WriteOutputAsync(stream, line).ConfigureAwait(false);
                    }
                    lines.Clear();
                    if (read == 0)
                        return;
                }
            }
            catch (Exception ex) when (ex is ObjectDisposedException or IOException or OperationCanceledException && outputFailure is null && stop.IsCancellationRequested)
            {
                // The pipe was closed under us after the step ended.
            }
            catch (Exception ex)
            {
                // Recording the output failed (the journal): stop the step, then report it.
                outputFailure ??= ExceptionDispatchInfo.Capture(ex);
                await stop.CancelAsync().ConfigureAwait(false);
            }
        }
        var pumps = Task.WhenAll(PumpAsync(process.StandardOutput, "stdout"), PumpAsync(process.StandardError, "stderr"));

        var stopped = false;
        try
        {
            await process.WaitForExitAsync(stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            stopped = true;
            ProcessTree.Kill(process);
            await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        ProcessTree.Kill(process); // whatever the script left running in the background
        var drained = pumps.IsCompleted || await Task.WhenAny(pumps, Task.Delay(DrainGrace, CancellationToken.None)).ConfigureAwait(false) == pumps;
        await stop.CancelAsync().ConfigureAwait(false);

        outputFailure?.Throw();
        var exitCode = process.ExitCode;
        var output = captured.ToString();
        string? error = null;
        if (!drained)
            error = "a process outside the step's process group kept its output open; the rest of the output was not read";
        if (stopped)
            return new StepResult(false, output, exitCode, error ?? "the step was stopped");
        return new StepResult(exitCode == 0 && error is null, output, exitCode, error);
    }

    /// <summary>RBP_PARAM_* and RBP_STEP_*_* for every value, and the variable each template refers to.</summary>
    private static Dictionary<string, string> TemplateVariables(StepTemplateValues values, out Func<TemplateReference, string> variableFor)
    {
        var variables = new Dictionary<string, string>(StringComparer.Ordinal);
        var sources = new Dictionary<string, string>(StringComparer.Ordinal);
        var ambiguous = new HashSet<string>(StringComparer.Ordinal);
        void Add(string name, string source, string value)
        {
            if (sources.TryGetValue(name, out var other) && other != source)
                ambiguous.Add(name);
            sources[name] = source;
            variables[name] = value;
        }
        foreach (var (name, value) in values.Parameters)
            Add(ParameterVariable(name), name, value);
        foreach (var (stepId, outputs) in values.StepOutputs)
        {
            foreach (var (name, value) in outputs)
                Add(OutputVariable(stepId, name), $"steps.{stepId}.outputs.{name}", value);
        }
        foreach (var name in ambiguous)
            variables.Remove(name);

        variableFor = reference =>
        {
            var name = reference.Kind == TemplateReferenceKind.Parameter
                ? ParameterVariable(reference.ParameterName!)
                : OutputVariable(reference.StepId!, reference.OutputName!);
            if (ambiguous.Contains(name))
                throw new StepTemplateException($"{{{{ {reference.Expression} }}}} cannot be passed: more than one value maps to the environment variable {name}; rename one of them");
            if (!variables.ContainsKey(name))
            {
                if (reference.Kind == TemplateReferenceKind.StepOutput)
                    values.Resolve(reference); // throws: the output does not exist
                variables[name] = "";
            }
            return name;
        };
        return variables;
    }

    /// <summary>The environment variable that holds parameter <paramref name="name"/>: <c>RBP_PARAM_&lt;NAME&gt;</c>.</summary>
    public static string ParameterVariable(string name) => "RBP_PARAM_" + name.ToUpperInvariant();

    /// <summary>The environment variable that holds an earlier step's output: <c>RBP_STEP_&lt;ID&gt;_&lt;NAME&gt;</c>.</summary>
    public static string OutputVariable(string stepId, string name) =>
        "RBP_STEP_" + stepId.ToUpperInvariant().Replace('-', '_') + "_" + name.ToUpperInvariant();

    private string WorkingDirectory(StepContext context, ShellAction shell)
    {
        var root = options.WorkingDirectory;
        if (string.IsNullOrEmpty(root))
        {
            root = Path.Combine(Path.GetTempPath(), "runbookportal", context.ExecutionId.ToString("N"));
            Directory.CreateDirectory(root);
        }
        return string.IsNullOrEmpty(shell.WorkingDirectory)
            ? root
            : Path.GetFullPath(Path.Combine(root, context.Values.Render(shell.WorkingDirectory)));
    }

    private void SetEnvironment(ProcessStartInfo start, Dictionary<string, string> variables)
    {
        if (!options.InheritEnvironment)
        {
            var kept = ShellOptions.PassedThrough
                .Select(name => (name, value: System.Environment.GetEnvironmentVariable(name)))
                .Where(v => v.value is not null)
                .ToList();
            start.Environment.Clear();
            foreach (var (name, value) in kept)
                start.Environment[name] = value;
        }
        foreach (var (name, value) in options.Environment)
            start.Environment[name] = value;
        // Last, so that the variables templates refer to hold what the templates mean.
        foreach (var (name, value) in variables)
            start.Environment[name] = value;
    }
}
