using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>How this node runs <c>shell</c> steps.</summary>
public sealed record ShellOptions
{
    /// <summary>The shell (bash), started afresh for every step.</summary>
    public string Shell { get; init; } = "bash";

    /// <summary>
    /// Where steps run; a step's relative <c>working_directory</c> is taken from here. When not set, each execution
    /// gets a private folder (0700) of its own under <see cref="RunsFolder"/>, shared by its steps and kept for a resume.
    /// </summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>The folder (kept 0700, or 0711 with <see cref="RunAs"/>) that holds each execution's own folder; the host puts it in its data folder.</summary>
    public string? RunsFolder { get; init; }

    /// <summary>Extra environment variables for every step.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    /// <summary>After SIGTERM (timeout, cancel, node shutdown), how long a step has to end before SIGKILL.</summary>
    public TimeSpan KillGrace { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// The user every shell step runs as (the portal must run as root to switch): with its own HOME, it cannot read
    /// the portal's environment or data. Not set: steps run as the portal's own user.
    /// </summary>
    public string? RunAs { get; init; }

    /// <summary>The variables of the portal process a step always sees (HOME, USER and LOGNAME are the RunAs user's when set).</summary>
    public static IReadOnlyList<string> PassedThrough { get; } =
        ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "HOSTNAME"];
}

/// <summary>
/// Runs a <c>shell</c> step the way CI runners run theirs: a fresh <c>bash --noprofile --norc -e -o pipefail</c> per
/// step, in a new session and process group, its script read from a private file of its own (it holds no value: see
/// below), stdin closed, a clean environment, as <see cref="ShellOptions.RunAs"/> when set.
/// <list type="bullet">
/// <item>Templates in <c>run</c> are never pasted into the script: each parameter is the environment variable
/// <c>RBP_PARAM_&lt;NAME&gt;</c>, each earlier output <c>RBP_STEP_&lt;ID&gt;_&lt;NAME&gt;</c> (upper case, '-' as '_'),
/// and a template is replaced by a quoted reference to it (see <see cref="ShellQuoting"/>).</item>
/// <item>The step's <c>env</c> values are rendered as plain text into their variables.</item>
/// <item>stdout and stderr are read apart and streamed line by line; <c>validate</c> and <c>outputs</c> read the
/// stream the step names (<c>stream:</c>, stdout by default); only the first <see cref="StepContext.MaxOutputBytes"/> is kept.</item>
/// <item>A step ends when its bash exits; what it left in its group is killed then (see <see cref="StepProcess"/>).
/// Timeout, cancel and shutdown send SIGTERM, then SIGKILL after <see cref="ShellOptions.KillGrace"/>.</item>
/// </list>
/// </summary>
public sealed class ShellStepExecutor : IStepExecutor
{
    /// <summary>The longest text one argument or environment variable may hold on Linux (MAX_ARG_STRLEN, with its NUL).</summary>
    private const int MaxArgumentBytes = 128 * 1024 - 1;

    /// <summary>Variables bash sets itself (read-only or computed), whatever the environment says.</summary>
    private static readonly HashSet<string> BashOwns =
        new(["BASHOPTS", "BASHPID", "BASH_ARGV0", "BASH_VERSINFO", "EUID", "PPID", "SHELLOPTS", "UID", "RANDOM", "SECONDS", "LINENO"], StringComparer.Ordinal);

    private readonly ShellOptions _options;
    private readonly UnixAccount? _runAs;

    /// <exception cref="ArgumentException">Neither a working directory nor a runs folder is set.</exception>
    /// <exception cref="InvalidOperationException"><see cref="ShellOptions.RunAs"/> names no user, or this process cannot switch user.</exception>
    public ShellStepExecutor(ShellOptions options)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        if (string.IsNullOrEmpty(options.WorkingDirectory) && string.IsNullOrEmpty(options.RunsFolder))
            throw new ArgumentException("set the working directory or the runs folder of shell steps", nameof(options));
        if (!string.IsNullOrWhiteSpace(options.RunAs))
        {
            _runAs = UnixAccount.Find(options.RunAs)
                ?? throw new InvalidOperationException($"Engine:RunAs names the user '{options.RunAs}', and this machine has no such user.");
            if (!UnixAccount.CanSwitchUser)
                throw new InvalidOperationException($"Engine:RunAs is '{options.RunAs}', but the portal does not run as root and so cannot switch to that user.");
        }
    }

    public string Action => StepActions.Shell;

    public async Task<StepResult> ExecuteAsync(StepContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var shell = context.Step.Shell ?? throw new ArgumentException($"step '{context.Step.Id}' is not a shell step", nameof(context));

        string script;
        string workingDirectory;
        Dictionary<string, string> environment;
        try
        {
            environment = BaseEnvironment();
            var shared = TemplateVariables(context.Values, out var variableFor);
            script = ShellQuoting.RenderScript(shell.Run, variableFor, context.Values.IsNumeric);
            workingDirectory = WorkingDirectory(context, shell);
            var own = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, value) in shell.Env)
            {
                if (!shared.ContainsKey(name)) // a template means what it says: its variable is not overridden
                    own[name] = context.Values.Render(value);
            }
            CheckVariables(shared);
            CheckVariables(own);
            if (own.Keys.FirstOrDefault(BashOwns.Contains) is { } taken)
                throw new StepTemplateException($"`env` names {taken}, which bash sets itself, so a step cannot set it: choose another name");
            foreach (var (name, value) in own)
                environment[name] = value;
            foreach (var (name, value) in shared)
                environment[name] = value;
            if (script.Contains('\0', StringComparison.Ordinal))
                throw new StepTemplateException("the command contains a NUL character, which a shell script cannot hold");
        }
        catch (StepTemplateException ex)
        {
            return new StepResult(false, "", Error: ex.Message);
        }
        if (!Directory.Exists(workingDirectory))
            return new StepResult(false, "", Error: $"the working directory {workingDirectory} does not exist");

        string scriptFile;
        try
        {
            scriptFile = WriteScript(context.Step.Id, script);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new StepResult(false, "", Error: $"the step's script could not be written: {ex.Message}");
        }

        // bash names its script in its messages ("<file>: line 3: …"): the step's log names the step instead.
        var scriptName = "rbp-" + context.Step.Id;
        var fileNamed = scriptFile + ": ";
        var captured = new CappedLines(context.MaxOutputBytes);
        var read = shell.Stream;
        StepProcess.Outcome outcome;
        try
        {
            outcome = await StepProcess.RunAsync(
                _options.Shell,
                ["--noprofile", "--norc", "-e", "-o", "pipefail", scriptFile],
                workingDirectory,
                environment,
                _runAs,
                _options.KillGrace,
                (stream, line) =>
                {
                    if (stream == "stderr" && line.StartsWith(fileNamed, StringComparison.Ordinal))
                        line = string.Concat(scriptName, ": ", line.AsSpan(fileNamed.Length));
                    if (read == ShellStream.Both || (read == ShellStream.Stderr) == (stream == "stderr"))
                        captured.Add(line);
                    return context.WriteOutputAsync(stream, line);
                },
                cancellationToken).ConfigureAwait(false);
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new StepResult(false, "", Error: $"could not start {_options.Shell}: {ex.Message}");
        }
        finally
        {
            File.Delete(scriptFile);
        }

        var output = captured.ToString();
        if (outcome.Stopped is not null)
            return new StepResult(false, output, outcome.ExitCode, "the step was stopped") { StopSignal = outcome.Stopped };
        return new StepResult(outcome.ExitCode == 0, output, outcome.ExitCode);
    }

    /// <summary>
    /// When the execution is over for good, deletes the folder this executor made for it (a folder set in the
    /// options is never deleted); a run that may be resumed keeps it.
    /// </summary>
    public ValueTask ReleaseAsync(Guid executionId, bool final)
    {
        if (!final || !string.IsNullOrEmpty(_options.WorkingDirectory))
            return ValueTask.CompletedTask;
        try
        {
            var folder = ExecutionFolder(executionId);
            if (Directory.Exists(folder))
                Directory.Delete(folder, recursive: true); // a symbolic link in it is removed, not followed
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Something in it is not ours to delete; it stays for an administrator.
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>The private folder of an execution when no working directory is configured.</summary>
    private string ExecutionFolder(Guid executionId) => Path.Combine(_options.RunsFolder!, executionId.ToString("N"));

    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>With RunAs the step's user must pass through a folder to its own things in it (0711: it cannot list the others).</summary>
    private UnixFileMode Passable => _runAs is null ? Private : Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    /// <summary>Makes <paramref name="folder"/> in the runs folder (both private: see <see cref="Passable"/>).</summary>
    private void MakeInRunsFolder(string folder, UnixFileMode mode)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
            return;
        }
        Directory.CreateDirectory(_options.RunsFolder!, Private);
        File.SetUnixFileMode(_options.RunsFolder!, Passable);
        Directory.CreateDirectory(folder, Private);
        File.SetUnixFileMode(folder, mode);
    }

    /// <summary>Makes the execution's folder in the runs folder (private, the RunAs user's).</summary>
    private string MakeExecutionFolder(Guid executionId)
    {
        var folder = ExecutionFolder(executionId);
        if (Directory.Exists(folder))
            return folder;
        MakeInRunsFolder(folder, Private);
        if (!OperatingSystem.IsWindows())
            _runAs?.Own(folder);
        return folder;
    }
    /// <summary>
    /// Writes a step's script to a file of its own that only the portal (and the RunAs user) can read, named after the
    /// step and a random part, in <c>.scripts</c> of the runs folder (or a private temporary folder of this node).
    /// The script holds no values (templates are references to variables), but it is kept out of every process's
    /// command line, which any user of the machine can read, and has no length limit.
    /// </summary>
    private string WriteScript(string stepId, string script)
    {
        var folder = ScriptsFolder();
        var file = Path.Combine(folder, $"rbp-{stepId}.{Guid.NewGuid():N}");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using (var stream = new FileStream(file, options))
        using (var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: false)))
            writer.Write(script);
        _runAs?.Own(file);
        return file;
    }

    private string? _scriptsFolder;

    /// <summary>The private folder of step scripts (0700, or 0711 with RunAs: the step's user reaches its own script by name only).</summary>
    private string ScriptsFolder()
    {
        if (_scriptsFolder is { } made && Directory.Exists(made))
            return made;
        string folder;
        if (string.IsNullOrEmpty(_options.RunsFolder))
        {
            folder = Directory.CreateTempSubdirectory("rbp-scripts-").FullName; // 0700
            if (!OperatingSystem.IsWindows())
                File.SetUnixFileMode(folder, Passable);
        }
        else
        {
            folder = Path.Combine(_options.RunsFolder, ".scripts");
            MakeInRunsFolder(folder, Passable);
        }
        return _scriptsFolder = folder;
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
            if (System.Text.Encoding.UTF8.GetByteCount(value) + name.Length + 1 > MaxArgumentBytes)
                throw new StepTemplateException($"the value of {name} is longer than 128 KiB, the most one environment variable can hold");
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
        var root = _options.WorkingDirectory;
        var sub = string.IsNullOrEmpty(shell.WorkingDirectory) ? null : context.Values.Render(shell.WorkingDirectory);
        if (sub is not null && sub.Contains('\0', StringComparison.Ordinal))
            throw new StepTemplateException("the working directory contains a NUL character");
        try
        {
            if (string.IsNullOrEmpty(root))
                root = MakeExecutionFolder(context.ExecutionId);
            return sub is null ? root : Path.GetFullPath(Path.Combine(root, sub));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new StepTemplateException($"the working directory cannot be used: {ex.Message}");
        }
    }

    /// <summary>What every step of this node starts from: the passed-through variables, the RunAs user's own, then the configured ones.</summary>
    private Dictionary<string, string> BaseEnvironment()
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var name in ShellOptions.PassedThrough)
        {
            if (System.Environment.GetEnvironmentVariable(name) is { } value)
                environment[name] = value;
        }
        if (_runAs is not null)
        {
            environment["HOME"] = _runAs.Home;
            environment["USER"] = environment["LOGNAME"] = _runAs.Name;
            environment.Remove("TMPDIR"); // the portal's temp folder is not the step user's
        }
        foreach (var (name, value) in _options.Environment)
            environment[name] = value;
        return environment;
    }
}
