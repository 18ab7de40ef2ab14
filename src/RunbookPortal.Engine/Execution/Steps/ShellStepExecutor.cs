using System.Collections.Concurrent;
using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>How this node runs <c>shell</c> steps.</summary>
public sealed record ShellOptions
{
    /// <summary>The shell (bash): one per execution, which forks a subshell for each step.</summary>
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
/// Runs a <c>shell</c> step as <c>set -e -o pipefail</c> bash, in a process of its own that leads its own process group.
/// <list type="bullet">
/// <item>Each execution has one long-lived bash (<see cref="ShellHost"/>); each step is a forked subshell of it with
/// the step's environment and working directory, so a step costs a fork, not a bash start-up, and steps still
/// share nothing: a step cannot change the shell later steps are forked from.</item>
/// <item>Templates in <c>run</c> are never pasted into the script: each parameter is the environment variable
/// <c>RBP_PARAM_&lt;NAME&gt;</c>, each earlier output <c>RBP_STEP_&lt;ID&gt;_&lt;NAME&gt;</c> (upper case, '-' as '_'),
/// and a template is replaced by a quoted reference to it (see <see cref="ShellQuoting"/>).</item>
/// <item>The step's <c>env</c> values are rendered as plain text into their variables.</item>
/// <item>stdout and stderr are read at once and streamed line by line; only the first
/// <see cref="StepContext.MaxOutputBytes"/> is kept.</item>
/// <item>On timeout or cancel the step's whole process group is killed; so are processes still running when the
/// step's script ends: a step's processes do not outlive it.</item>
/// </list>
/// <see cref="ReleaseAsync"/> ends an execution's shell when the run ends.
/// </summary>
public sealed class ShellStepExecutor(ShellOptions options) : IStepExecutor, IAsyncDisposable
{
    private readonly ConcurrentDictionary<Guid, ShellHost> _hosts = new();

    public string Action => StepActions.Shell;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var shell = context.Step.Shell ?? throw new ArgumentException($"step '{context.Step.Id}' is not a shell step", nameof(context));

        string script;
        string workingDirectory;
        Dictionary<string, string> shared;
        var own = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            shared = TemplateVariables(context.Values, out var variableFor);
            script = ShellQuoting.RenderScript(shell.Run, variableFor, context.Values.IsNumeric);
            workingDirectory = WorkingDirectory(context, shell);
            foreach (var (name, value) in shell.Env)
            {
                if (!shared.ContainsKey(name)) // a template means what it says: its variable is not overridden
                    own[name] = context.Values.Render(value);
            }
            CheckVariables(shared);
            CheckVariables(own);
            if (script.Contains('\0', StringComparison.Ordinal))
                throw new StepTemplateException("the command contains a NUL character, which a shell script cannot hold");
        }
        catch (StepTemplateException ex)
        {
            return new StepResult(false, "", Error: ex.Message);
        }
        if (!Directory.Exists(workingDirectory))
            return new StepResult(false, "", Error: $"the working directory {workingDirectory} does not exist");

        ShellHost host;
        try
        {
            host = HostFor(context.ExecutionId);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            return new StepResult(false, "", Error: $"could not start {options.Shell}: {ex.Message}");
        }

        var captured = new CappedLines(context.MaxOutputBytes);
        var outcome = await host.RunAsync(
            new ShellRequest("rbp-" + context.Step.Id, workingDirectory, shared, own, script),
            (stream, line) =>
            {
                captured.Add(line);
                return context.WriteOutputAsync(stream, line);
            },
            cancellationToken).ConfigureAwait(false);

        var output = captured.ToString();
        if (outcome.Stopped)
            return new StepResult(false, output, outcome.ExitCode, outcome.Error ?? "the step was stopped");
        return new StepResult(outcome.ExitCode == 0 && outcome.Error is null, output, outcome.ExitCode, outcome.Error);
    }

    /// <summary>
    /// Ends the shell of <paramref name="executionId"/>, if it has one; when the execution is over for good, also
    /// deletes the working folder this executor made for it (a folder set in the options is never deleted).
    /// </summary>
    /// <remarks>Does not wait for the shell to exit: it reads end-of-file and exits by itself (or is killed after a grace period).</remarks>
    public ValueTask ReleaseAsync(Guid executionId, bool final)
    {
        _hosts.TryRemove(executionId, out var host);
        var folder = final && string.IsNullOrEmpty(options.WorkingDirectory) ? ExecutionFolder(executionId) : null;
        if (host is not null || folder is not null)
            _ = EndAsync(host, folder);
        return ValueTask.CompletedTask;

        static async Task EndAsync(ShellHost? host, string? folder)
        {
            if (host is not null)
                await host.DisposeAsync().ConfigureAwait(false);
            try
            {
                if (folder is not null && Directory.Exists(folder))
                    Directory.Delete(folder, recursive: true); // a symbolic link in it is removed, not followed
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                // Something in it is not ours to delete: the temp folder's own clean-up gets it.
            }
        }
    }

    /// <summary>The working folder of an execution when none is configured: its own, under the temp folder.</summary>
    private static string ExecutionFolder(Guid executionId) => Path.Combine(Path.GetTempPath(), "runbookportal", executionId.ToString("N"));

    public async ValueTask DisposeAsync()
    {
        foreach (var executionId in _hosts.Keys)
        {
            if (_hosts.TryRemove(executionId, out var host))
                await host.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The execution's shell; a new one when it has none or its shell died. An execution runs one step at a time,
    /// so two calls never race for the same execution (and different executions never share a shell).
    /// </summary>
    private ShellHost HostFor(Guid executionId)
    {
        if (_hosts.TryGetValue(executionId, out var host))
        {
            if (!host.Broken)
                return host;
            _ = host.DisposeAsync().AsTask();
        }
        host = ShellHost.Start(options.Shell, BaseEnvironment());
        _hosts[executionId] = host;
        return host;
    }

    /// <summary>Names bash can export, and values an environment can hold.</summary>
    private static void CheckVariables(Dictionary<string, string> variables)
    {
        foreach (var (name, value) in variables)
        {
            if (name.Length == 0 || !(char.IsAsciiLetter(name[0]) || name[0] == '_') || !name.All(c => char.IsAsciiLetterOrDigit(c) || c == '_'))
                throw new StepTemplateException($"'{name}' cannot be an environment variable name: use letters, digits and '_', not starting with a digit");
            if (value.Contains('\0', StringComparison.Ordinal))
                throw new StepTemplateException($"the value of {name} contains a NUL character, which an environment variable cannot hold");
        }
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

    /// <exception cref="StepTemplateException">The folder cannot be named or made.</exception>
    private string WorkingDirectory(StepContext context, ShellAction shell)
    {
        var root = options.WorkingDirectory;
        var sub = string.IsNullOrEmpty(shell.WorkingDirectory) ? null : context.Values.Render(shell.WorkingDirectory);
        if (sub is not null && sub.Contains('\0', StringComparison.Ordinal))
            throw new StepTemplateException("the working directory contains a NUL character");
        try
        {
            if (string.IsNullOrEmpty(root))
            {
                root = ExecutionFolder(context.ExecutionId);
                Directory.CreateDirectory(root);
            }
            return sub is null ? root : Path.GetFullPath(Path.Combine(root, sub));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new StepTemplateException($"the working directory cannot be used: {ex.Message}");
        }
    }

    /// <summary>What every step of this node starts from: the passed-through variables (or all), then the configured ones.</summary>
    private Dictionary<string, string> BaseEnvironment()
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        if (options.InheritEnvironment)
        {
            foreach (System.Collections.DictionaryEntry entry in System.Environment.GetEnvironmentVariables())
                environment[(string)entry.Key] = (string?)entry.Value ?? "";
        }
        else
        {
            foreach (var name in ShellOptions.PassedThrough)
            {
                if (System.Environment.GetEnvironmentVariable(name) is { } value)
                    environment[name] = value;
            }
        }
        foreach (var (name, value) in options.Environment)
            environment[name] = value;
        return environment;
    }
}
