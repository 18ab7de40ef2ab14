using System.Diagnostics;
using System.Globalization;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// What one shell step asks of the execution's shell. <paramref name="Shared"/> are the variables every step of the
/// execution sees (parameters and outputs, all named <c>RBP_…</c>): the shell keeps them, and only what changed since
/// the last step is sent. <paramref name="Own"/> are the step's <c>env</c>, set in its subshell only.
/// </summary>
internal sealed record ShellRequest(
    string Name, string WorkingDirectory, IReadOnlyDictionary<string, string> Shared, IReadOnlyDictionary<string, string> Own, string Script);

/// <summary>How a shell step ended: the exit code (null when the shell could not say) and whether it was stopped.</summary>
internal sealed record ShellOutcome(int? ExitCode, bool Stopped, string? Error);

/// <summary>
/// One bash process per execution that runs the execution's shell steps, one at a time, each in a <b>forked
/// subshell</b> — its own process, process group, environment and working directory — so that a step costs a
/// fork of an already started shell instead of starting bash again (bash start-up is most of the cost of a
/// short step). A step cannot change what later steps start from: it runs in a copy of the shell.
/// <para>
/// The protocol: the shell reads requests from its stdin (moved to fd 4, which every step closes) as NUL-terminated
/// fields, and an ASCII command by its length (see <see cref="WriteRequestAsync"/>); only what changed since the last
/// step is sent. The command
/// (<see cref="StepCommand"/>) pastes the script — author text, in which templates are already variable references
/// (<see cref="ShellQuoting"/>) — into <c>( set -e; …; script )</c> (<c>pipefail</c> is the shell's own, inherited),
/// run as a foreground job under job control, so the subshell leads a process group of its own; variable values are
/// only ever assigned by <c>export "$name=$value"</c>, never parsed. The subshell's first act is to print
/// <c>&lt;nonce&gt; pid &lt;pid&gt;</c> on stdout (on stderr it would cost a redirection in every step): that group is
/// what a cancel or timeout kills, and what is left of it is killed when the step ends. When the subshell ends, the
/// shell prints <c>&lt;nonce&gt; end &lt;code&gt;</c> on stdout; the step's process has exited by then, so what it
/// wrote to stderr is in that pipe, and the reader takes it in before it ends the step. The nonce is random per
/// shell; a script that cannot be parsed never prints its pid, which is how its exit code 2 is told from a script's
/// own.
/// A step's <c>env</c> may not name a variable bash keeps read-only (<c>UID</c>, <c>PPID</c>…):
/// the step then fails with bash's message before its script runs.
/// </para>
/// <para>
/// A script that is one external command and nothing else (<see cref="SingleCommand"/>), in a step without an
/// <c>env</c> of its own, runs without the subshell: <c>4&lt;&amp;- command</c>, the shell's foreground job, is a
/// process group of its own just the same, and running it cannot change the shell. For a short command the subshell
/// was a fifth of the step's cost: the pages its bash touches before it runs the command are copied, and with
/// a redirection it forks again. Such a command prints no pid line: a cancel or timeout kills the groups of the
/// shell's children, and at its end what it left running is found among the processes of the shell's session whose
/// ids were handed out while it ran (<see cref="ProcessTree.KillSessionBornAfter"/>).
/// </para>
/// <para>
/// Inside a step <c>$$</c> is the execution's shell; <c>$BASHPID</c> is the step's own process (and group) id.
/// </para>
/// </summary>
internal sealed class ShellHost : IAsyncDisposable
{
    /// <summary>
    /// The shell's program. Variables and a function of its own start with <c>__rbp_</c>; a step can see them (they
    /// are not exported, so nothing it starts does): unsetting them in each step cost more than a tenth of a trivial
    /// step, as every page of memory the subshell writes to before it runs the command is copied. For the same reason
    /// the shell does all it can before it forks: the step's redirections are made around the <c>eval</c>, and the
    /// command the step runs is put together by the portal (<see cref="StepCommand"/>), not by the shell.
    /// It is one line: bash numbers the lines of an <c>eval</c> from the line the eval stands on, so on line 1 the
    /// line numbers in a step's error messages and <c>$LINENO</c> are those of the step's own script.
    /// </summary>
    private static readonly string Program = string.Join(" ",
        "set -m -o pipefail;", // pipefail: every step inherits it (the shell's own loop has no pipelines)
        // 4: the requests, read from there; 3: stderr for the steps; the shell's own stdin and stderr are /dev/null (no
        // step reads the requests; the shell's job notices go nowhere).
        "exec 3>&2 4<&0 0</dev/null 2>/dev/null;",
        "IFS= read -u 4 -r -d '' __rbp_nonce || exit 0;",
        "__rbp_own_env() { local __rbp_i; for ((__rbp_i = 0; __rbp_i < ${#__rbp_own[@]}; __rbp_i += 2)); do export \"${__rbp_own[__rbp_i]}=${__rbp_own[__rbp_i + 1]}\"; done; };",
        "while IFS= read -u 4 -r -d '' __rbp_head; do",
        "  if [[ $__rbp_head == *' '* ]]; then", // "<set> <unset> <own> <directory?> <length>"; only "<length>" when nothing else changed
        "    __rbp_counts=($__rbp_head);",
        "    for ((__rbp_i = 0; __rbp_i < __rbp_counts[0]; __rbp_i++)); do IFS= read -u 4 -r -d '' __rbp_name; IFS= read -u 4 -r -d '' __rbp_value; export \"$__rbp_name=$__rbp_value\"; done;",
        "    for ((__rbp_i = 0; __rbp_i < __rbp_counts[1]; __rbp_i++)); do IFS= read -u 4 -r -d '' __rbp_name; unset -v \"$__rbp_name\"; done;",
        "    for ((__rbp_i = 0; __rbp_i < __rbp_counts[2] * 2; __rbp_i++)); do IFS= read -u 4 -r -d '' '__rbp_own[__rbp_i]'; done;",
        "    __rbp_dir=$PWD;",
        "    ((__rbp_counts[3] == 0)) || IFS= read -u 4 -r -d '' __rbp_dir;",
        "    unset -v __rbp_counts __rbp_i __rbp_name __rbp_value;",
        "  fi;",
        // The command follows: that many characters (one read), or up to a NUL when the length is 0 (a byte a read).
        "  if ((${__rbp_head##* } > 0)); then IFS= read -u 4 -r -N \"${__rbp_head##* }\" __rbp_command || break; else IFS= read -u 4 -r -d '' __rbp_command || break; fi;",
        // The shell changes to the directory again only when it is not the one it stands in (a step may have removed
        // and made it again). The step's stderr is the steps' stderr (what the shell saves to undo that, after the
        // fork, is closed when the step runs a program); the step itself closes 4, the requests.
        "  { [[ -z $__rbp_dir && . -ef $PWD ]] || cd -- \"${__rbp_dir:-$PWD}\" 2>&3; } && eval \"$__rbp_command\" 2>&3 3>&-;",
        // The end, on stdout only, in one write (a newline in printf's format flushes); the reader then takes in
        // what the step left on stderr. $0 is the shell's again, should the next command not parse. The shell forgets
        // where it found the command it ran directly (a later step may put another of that name on its PATH).
        "  printf %s $'\\n'\"$__rbp_nonce end $?\"$'\\n';",
        "  BASH_ARGV0=rbp-shell __rbp_dir= __rbp_own=(); hash -r;",
        "done");

    /// <summary>Follows bash's message when a script cannot be parsed (it then never starts: no pid line).</summary>
    private const string ParseHint = "The script could not be parsed: look for an unclosed quote, bracket, if, for, case or here-document.";

    /// <summary>How long a stopped step's shell may take to report its end before the whole shell is killed.</summary>
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(5);

    /// <summary>How often a stop looks again for the step to kill.</summary>
    private static readonly TimeSpan KillRetry = TimeSpan.FromMilliseconds(20);

    /// <summary>Requests up to this size are written synchronously (a pipe holds 64 KiB).</summary>
    private const int SyncWriteLimit = 32 * 1024;

    /// <summary>Reads of stderr at a step's end, at most: twice what a pipe holds (64 KiB, in reads of up to 16 KiB).</summary>
    private const int DrainReads = 8;

    /// <summary>How long the reader waits in <c>poll</c> before it looks whether it was abandoned.</summary>
    private const int PollTimeoutMs = 1000;

    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false);

    private readonly Process _process;
    private readonly int _pid;
    private readonly bool _direct;
    private readonly string _nonce = "rbp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
    private readonly Task _reader; // ends when the reader thread does
    private readonly Task _exited;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private volatile StepRun? _current;
    private volatile bool _killed;
    private volatile bool _abandoned;
    private volatile string? _readFailure;
    private bool _nonceSent;
    private string? _directory;

    /// <summary>The shared variables the shell holds now.</summary>
    private readonly Dictionary<string, string> _shared = new(StringComparer.Ordinal);

    private ShellHost(Process process, bool direct)
    {
        _process = process;
        _pid = process.Id; // Id throws once the process is disposed
        _direct = direct;
        _exited = process.WaitForExitAsync();
        _reader = StartReader(process);
    }

    /// <summary>Whether the shell has exited or was killed; the executor then starts a new one.</summary>
    public bool Broken => _killed || _exited.IsCompleted || _reader.IsCompleted;

    /// <summary>Starts bash in a session of its own, with the environment every step starts from.</summary>
    public static ShellHost Start(string shell, IEnumerable<KeyValuePair<string, string>> environment)
    {
        var start = ProcessTree.StartInfo(shell, ["--noprofile", "--norc", "-c", Program, "rbp-shell"]);
        start.RedirectStandardInput = true;
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.StandardInputEncoding = Utf8; // the output is decoded by the reader (ShellStream)
        start.Environment.Clear();
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        var process = new Process { StartInfo = start };
        process.Start();
        return new ShellHost(process, DirectCommands && KnowsWords(shell) && !start.Environment.Keys.Any(MayDefineFunctions));
    }

    /// <summary>
    /// Runs one step; <paramref name="output"/> gets its lines as they come. Cancellation kills the step's process
    /// group and answers once the shell has reported the step's end.
    /// </summary>
    public async Task<ShellOutcome> RunAsync(ShellRequest request, Func<string, string, ValueTask> output, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(CancellationToken.None).ConfigureAwait(false);
        try
        {
            if (Broken)
                return new ShellOutcome(null, false, "the shell of this execution has exited");
            var run = new StepRun(output, RunsDirectly(request) ? ProcessTree.LastPid() : null);
            _current = run;
            var stopped = false;
            using (cancellationToken.Register(run.Stop)) // before the write: a write that waits can still be cancelled
            {
                try
                {
                    await WriteRequestAsync(request, run.Direct).WaitAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException)
                {
                    _current = null;
                    KillEverything(run); // what it holds no longer matches what was sent: the next step gets a new shell
                    return ex is IOException
                        ? new ShellOutcome(null, false, "the shell of this execution has exited: " + ex.Message)
                        : new ShellOutcome(null, true, "the step was stopped before the shell took it");
                }

                var first = await Task.WhenAny(run.Ended, run.Stopping, _exited, _reader).ConfigureAwait(false);
                if (first == run.Stopping && !run.Ended.IsCompleted)
                {
                    stopped = true;
                    await KillStepAsync(run).ConfigureAwait(false);
                }
                else if (first == _exited && !run.Ended.IsCompleted)
                {
                    // What the shell wrote before it died may still be in the pipes.
                    await Task.WhenAny(run.Ended, _reader, Task.Delay(StopGrace)).ConfigureAwait(false);
                }
            }
            _current = null;
            if (run.OutputFailure is { } failure)
            {
                if (!run.Ended.IsCompleted)
                    KillEverything(run);
                failure.Throw();
            }
            if (!run.Ended.IsCompleted)
            {
                KillEverything(run);
                return new ShellOutcome(null, stopped, _readFailure is { } reason
                    ? "the shell's output could not be read any more: " + reason
                    : "the shell of this execution exited during the step");
            }
            // What the step left running was killed by the reader when it saw the end (KillLeftovers).
            var code = run.Ended.Result;
            if (code != 0)
                _directory = null; // the shell may not have changed to it: name it again next time
            if (code == 2 && run.Group is null && !run.Direct && !stopped)
                await run.OutputAsync("stderr", ParseHint).ConfigureAwait(false); // bash's own message came before
            return new ShellOutcome(code, stopped, null);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// What the shell evaluates for a step: the step's name as <c>$0</c>, then the subshell — <c>set -e</c>; its pid on
    /// stdout, in one write, as its first act; the step's own variables; the script — all on the line the
    /// <c>eval</c> stands on, so that the script's first line is line 1. A script that cannot be parsed fails the
    /// whole command before anything of it runs. A command run <paramref name="direct"/>ly follows the closing of the
    /// requests (<c>4&lt;&amp;-</c>, before any redirection of its own), without subshell or pid line.
    /// </summary>
    private static string StepCommand(ShellRequest request, string nonce, bool direct) => direct
        ? string.Concat("BASH_ARGV0=", ShellQuoting.Quote(request.Name), "; 4<&- ", request.Script.Trim())
        : string.Concat(
            "BASH_ARGV0=", ShellQuoting.Quote(request.Name), "; ( set +m -e; printf %s $'\\n'\"", nonce, " pid $BASHPID\"$'\\n'; ",
            request.Own.Count > 0 ? "__rbp_own_env; " : "", request.Script, "\n) 4<&-");

    /// <summary>Whether the step is one external command (<see cref="SingleCommand"/>) that the shell may run as its job directly.</summary>
    private bool RunsDirectly(ShellRequest request) =>
        _direct && request.Own.Count == 0 && SingleCommand.IsExternalCommand(request.Script);

    /// <summary>
    /// Variables through which bash defines functions or options at start-up: a function may be named like a command,
    /// and would then run in the shell itself. Such a shell runs every script in a subshell.
    /// </summary>
    private static bool MayDefineFunctions(string name) =>
        name.StartsWith("BASH_FUNC_", StringComparison.Ordinal) || name is "BASH_ENV" or "ENV" or "SHELLOPTS" or "BASHOPTS";

    /// <summary>Whether every builtin and reserved word of <paramref name="shell"/> is one <see cref="SingleCommand"/> knows (asked once per shell).</summary>
    private static bool KnowsWords(string shell) => KnownShells.GetOrAdd(shell, static path =>
    {
        try
        {
            var start = new ProcessStartInfo(path, ["--noprofile", "--norc", "-c", "compgen -b -k"])
            {
                UseShellExecute = false,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            start.Environment.Clear();
            using var process = Process.Start(start)!;
            var words = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(5000))
            {
                ProcessTree.Kill(process);
                return false;
            }
            var listed = words.GetAwaiter().GetResult().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            return process.ExitCode == 0 && listed.Length > 0 && listed.All(SingleCommand.Knows);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            return false;
        }
    });

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> KnownShells = new(StringComparer.Ordinal);

    /// <summary>From this long on, a command run directly may have seen process ids wrap around: its leftovers are looked for everywhere.</summary>
    private static readonly TimeSpan LongStep = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Whether a command may run without a subshell here: it then prints no pid line, and what it leaves running is
    /// found by the process ids handed out while it ran (<see cref="ProcessTree.KillSessionBornAfter"/>), so both
    /// process groups and that count must be available.
    /// </summary>
    private static readonly bool DirectCommands = ProcessTree.UsesProcessGroups && ProcessTree.LastPid() is not null;

    /// <summary>
    /// Writes the request. One that fits the pipe's buffer is written synchronously — it cannot wait: the shell read
    /// every earlier request whole before it ran that step — so a step's end, which usually arrives on the reader's
    /// thread, goes straight on to the next step. A larger one is written from the thread pool, so the reader never
    /// waits on the shell while the shell may be waiting on the reader.
    /// </summary>
    private Task WriteRequestAsync(ShellRequest request, bool direct)
    {
        // Fields end with NUL: a head "<set> <unset> <own> <directory?> <length>" — only "<length>" when nothing but
        // the script is sent —, the shared variables that changed, those that went away, the step's own, the directory
        // when it changed, then the script.
        var set = request.Shared.Where(v => !_shared.TryGetValue(v.Key, out var known) || known != v.Value).ToList();
        var unset = _shared.Keys.Where(name => !request.Shared.ContainsKey(name)).ToList();
        var directory = request.WorkingDirectory == _directory ? null : request.WorkingDirectory;
        var text = new StringBuilder(request.Script.Length + 64);
        void Field(string value) => text.Append(value).Append('\0');
        if (!_nonceSent)
        {
            Field(_nonce);
            _nonceSent = true;
        }
        // The command goes last. All ASCII, its length is sent and bash takes it in one read; otherwise a NUL ends
        // it (bash counts characters in its locale, and reads up to a NUL a byte at a time).
        var command = StepCommand(request, _nonce, direct);
        var length = Ascii.IsValid(command) ? command.Length : 0;
        if (set.Count == 0 && unset.Count == 0 && request.Own.Count == 0 && directory is null)
        {
            Field(length.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            Field(string.Create(CultureInfo.InvariantCulture, $"{set.Count} {unset.Count} {request.Own.Count} {(directory is null ? 0 : 1)} {length}"));
            foreach (var (name, value) in set)
            {
                Field(name);
                Field(value);
                _shared[name] = value;
            }
            foreach (var name in unset)
            {
                Field(name);
                _shared.Remove(name);
            }
            foreach (var (name, value) in request.Own)
            {
                Field(name);
                Field(value);
            }
            if (directory is not null)
                Field(directory);
        }
        _directory = request.WorkingDirectory;
        if (length > 0)
            text.Append(command);
        else
            Field(command);
        var message = text.ToString();
        if (Utf8.GetMaxByteCount(message.Length) <= SyncWriteLimit)
        {
            _process.StandardInput.Write(message);
            _process.StandardInput.Flush();
            return Task.CompletedTask;
        }
        return Task.Run(async () =>
        {
            await _process.StandardInput.WriteAsync(message).ConfigureAwait(false);
            await _process.StandardInput.FlushAsync().ConfigureAwait(false);
        });
    }

    /// <summary>
    /// Kills the step's process group — the shell's child, whose pid is its group id — and waits for the shell to
    /// report the end. The request may not have reached the shell yet, so this repeats until the end is reported;
    /// a shell that does not answer in time is left to the caller to kill.
    /// </summary>
    private async Task KillStepAsync(StepRun run)
    {
        var started = Stopwatch.GetTimestamp();
        while (!run.Ended.IsCompleted && !_exited.IsCompleted && Stopwatch.GetElapsedTime(started) < StopGrace)
        {
            if (run.Group is { } group)
                ProcessTree.KillGroup(group);
            foreach (var child in ProcessTree.Children(_pid))
                ProcessTree.KillGroup(child);
            await Task.WhenAny(run.Ended, _exited, Task.Delay(KillRetry)).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Kills what is left of a step: its process group, or — a command run directly, whose group is not known — every
    /// process of the shell's session (the shell excepted) that started while it ran.
    /// </summary>
    private void KillLeftovers(StepRun run)
    {
        if (run.Group is { } group)
            ProcessTree.KillGroup(group);
        else if (run.PidsBefore is { } before)
            ProcessTree.KillSessionBornAfter(_pid, before, Stopwatch.GetElapsedTime(run.Started) >= LongStep);
    }

    /// <summary>The shell no longer answers: kill the running step and the shell; the next step gets a new shell.</summary>
    private void KillEverything(StepRun? run = null)
    {
        _killed = true;
        // A shell that died leaves its step behind, in a group of its own that is no longer the shell's child.
        if (run is not null)
            KillLeftovers(run);
        try
        {
            foreach (var child in ProcessTree.Children(_pid))
                ProcessTree.KillGroup(child);
        }
        catch (InvalidOperationException)
        {
            // The shell has gone.
        }
        ProcessTree.Kill(_process);
    }

    /// <summary>
    /// Reads both of the shell's streams on one thread of its own, which waits in <c>poll</c>: a step's end is
    /// taken in with one wake-up, and the runner goes on from there at once (the step's completion runs on this
    /// thread). Reading through the thread pool instead cost three hand-overs
    /// per step and, measured, about six times the CPU: idle pool threads spin on a 2-core machine while the shell
    /// needs it. The thread ends when both streams are closed, or soon after the shell is disposed when something
    /// the steps started (a daemon that left the process group) still holds them open.
    /// </summary>
    private Task StartReader(Process process)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var streams = new[]
        {
            new ShellStream("stderr", ((PipeStream)process.StandardError.BaseStream).SafePipeHandle),
            new ShellStream("stdout", ((PipeStream)process.StandardOutput.BaseStream).SafePipeHandle),
        };
        var thread = new Thread(() =>
        {
            try
            {
                Read(streams);
            }
            catch (Exception ex) when (ex is not OutOfMemoryException)
            {
                // Nothing may escape a thread of its own (it would end the process): the shell can no longer be
                // read, so it is of no more use; the running step ends with that.
                _readFailure = ex.Message;
                KillEverything(_current);
            }
            finally
            {
                foreach (var stream in streams)
                    stream.Dispose();
                done.TrySetResult();
            }
        })
        {
            IsBackground = true,
            Name = "rbp-shell-output",
        };
        thread.Start();
        return done.Task;
    }

    private void Read(ShellStream[] streams)
    {
        var (stderr, stdout) = (streams[0], streams[1]);
        var polled = new Native.PollFd[streams.Length];
        var bytes = new byte[16384];
        var lines = new List<string>();
        while (true)
        {
            var open = 0;
            for (var i = 0; i < streams.Length; i++)
            {
                polled[i] = new Native.PollFd { Fd = streams[i].Open ? streams[i].Fd : -1, Events = Native.PollIn };
                open += streams[i].Open ? 1 : 0;
            }
            if (open == 0 || _abandoned)
                return;
            if (Native.Poll(polled, (nuint)polled.Length, PollTimeoutMs) < 0)
            {
                var error = Marshal.GetLastPInvokeError();
                if (error == Native.EINTR)
                    continue;
                throw new IOException($"poll on the shell's output failed (errno {error})");
            }
            if (polled[0].REvents != 0)
                ReadErrors(stderr, bytes, lines);
            if (polled[1].REvents == 0 || !stdout.Read(bytes, lines))
                continue;
            var ended = default(int?);
            foreach (var line in lines)
                ended = Line(stdout, line) ?? ended;
            lines.Clear();
            // Only now: what came after the end marker in the same read still belongs to the step that ended (the
            // end runs the next step on, on this thread). The step has exited, so all it wrote to stderr is in that
            // pipe by now: it is taken in first, with the last line even without its newline. What the step left
            // running is killed first, so that nothing more comes; the pipe is read until it is empty, or for as
            // long as it takes to read what it can hold twice over (a process that escaped the group may go on).
            if (ended is { } code && _current is { } run)
            {
                KillLeftovers(run);
                for (var drained = 0; drained < DrainReads && stderr.Open && stderr.Ready(); drained++)
                    ReadErrors(stderr, bytes, lines);
                stderr.TakeRest(lines);
                foreach (var line in lines)
                    Output(stderr.Name, line);
                lines.Clear();
                run.End(code);
            }
        }
    }

    /// <summary>Reads stderr once and hands its complete lines on, as they are; false when nothing was read.</summary>
    private bool ReadErrors(ShellStream stderr, byte[] bytes, List<string> lines)
    {
        if (!stderr.Read(bytes, lines))
            return false;
        foreach (var line in lines)
            Output(stderr.Name, line);
        lines.Clear();
        return true;
    }

    /// <summary>Hands a line of stdout on; answers the exit code when it is the step's end marker.</summary>
    private int? Line(ShellStream stream, string line)
    {
        // The shell's lines (the pid and the end) follow a newline of their own, so they start a line and no cut of
        // a long line can split them. That newline leaves an empty line when the output before ended with one: an
        // empty line is held until the next line shows whether it is that one. Should something the step left
        // running write between that newline and the line (bash writes the first of them in two), what it wrote
        // comes first on the line: it is output, and the rest the shell's line.
        if (line.IndexOf(_nonce, StringComparison.Ordinal) is var at and >= 0)
        {
            if (at > 0)
            {
                if (stream.HeldEmpty)
                    Output(stream.Name, "");
                Output(stream.Name, line[..at]);
            }
            stream.HeldEmpty = false;
            return Control(line[at..]);
        }
        if (stream.HeldEmpty)
            Output(stream.Name, "");
        stream.HeldEmpty = line.Length == 0;
        if (!stream.HeldEmpty)
            Output(stream.Name, line);
        return null;
    }

    /// <summary>Hands a line to the step; a journal that is behind holds the reader (and so the step) back.</summary>
    private void Output(string stream, string line)
    {
        if (_current is not { } run)
            return;
        var pending = run.OutputAsync(stream, line);
        if (!pending.IsCompletedSuccessfully)
            pending.AsTask().GetAwaiter().GetResult();
    }

    /// <summary>
    /// A line of the shell's own on stdout: <c>&lt;nonce&gt; pid &lt;pid&gt;</c> (the step's first act: its process
    /// group) or <c>&lt;nonce&gt; end &lt;code&gt;</c> (the step has ended and its output on stdout is complete).
    /// </summary>
    private int? Control(string line)
    {
        var control = line[_nonce.Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (_current is not { } run || control is not [var kind, var number]
            || !int.TryParse(number, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value))
            return null;
        if (kind == "pid")
            run.Group = value;
        return kind == "end" ? value : null;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.StandardInput.Close(); // the loop reads end-of-file and the shell exits
        }
        catch (IOException)
        {
        }
        if (await Task.WhenAny(_exited, Task.Delay(StopGrace)).ConfigureAwait(false) != _exited)
            KillEverything(_current);
        if (await Task.WhenAny(_reader, Task.Delay(StopGrace)).ConfigureAwait(false) != _reader)
            _abandoned = true; // a process outside the shell's reach holds the pipes open: stop reading them
        _process.Dispose();
        _gate.Dispose();
    }

    /// <summary>The state of the step that runs now, fed by the reader.</summary>
    private sealed class StepRun
    {
        private readonly Func<string, string, ValueTask> _output;
        // The step's end runs on in the reader that saw the end marker: the runner then starts the next step without
        // waiting for a thread of the pool. Nothing after the marker waits for the reader: it reads the next step's
        // output once the runner next awaits.
        private readonly TaskCompletionSource<int> _end = new();
        private readonly TaskCompletionSource _stopping = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public StepRun(Func<string, string, ValueTask> output, int? pidsBefore)
        {
            _output = output;
            PidsBefore = pidsBefore;
        }

        public long Started { get; } = Stopwatch.GetTimestamp();

        /// <summary>The last process id handed out before a command run directly was sent; null for a subshell.</summary>
        public int? PidsBefore { get; }

        /// <summary>Whether the step runs as the shell's job directly, without a subshell (and so without a pid line).</summary>
        public bool Direct => PidsBefore is not null;

        public Task Stopping => _stopping.Task;

        private int _group;

        /// <summary>The step's process (and group) id, once its first line said it.</summary>
        public int? Group
        {
            get => Volatile.Read(ref _group) is > 1 and var group ? group : null;
            set => Volatile.Write(ref _group, value ?? 0);
        }

        /// <summary>The exit code, once the end marker and all of the step's output were read.</summary>
        public Task<int> Ended => _end.Task;

        public ExceptionDispatchInfo? OutputFailure { get; private set; }

        public void Stop() => _stopping.TrySetResult();

        public void End(int code) => _end.TrySetResult(code);

        public async ValueTask OutputAsync(string stream, string line)
        {
            if (OutputFailure is not null)
                return;
            try
            {
                await _output(stream, line).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // Recording the output failed (the journal): stop the step, then report it.
                OutputFailure = ExceptionDispatchInfo.Capture(ex);
                Stop();
            }
        }
    }

    /// <summary>One of the shell's output pipes: its descriptor, decoder and line splitter.</summary>
    private sealed class ShellStream(string name, SafePipeHandle handle) : IDisposable
    {
        private readonly Decoder _decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetDecoder();
        private readonly LineSplitter _splitter = new();
        private char[] _chars = new char[16384];
        private bool _referenced = AddReference(handle);

        public string Name => name;

        public int Fd { get; } = (int)handle.DangerousGetHandle();

        public bool Open { get; private set; } = true;

        public bool HeldEmpty { get; set; }

        /// <summary>
        /// Reads once and appends the lines completed; false when nothing could be read (interrupted). End of file
        /// closes the stream, with its last line even without a newline.
        /// </summary>
        public bool Read(byte[] bytes, List<string> lines)
        {
            var read = Native.Read(Fd, bytes, bytes.Length);
            if (read < 0 && Marshal.GetLastPInvokeError() is Native.EINTR or Native.EAGAIN)
                return false;
            Take(bytes.AsSpan(0, (int)Math.Max(read, 0)), lines);
            return true;
        }

        /// <summary>Whether there is something to read now (or the pipe was closed).</summary>
        public bool Ready()
        {
            var polled = new[] { new Native.PollFd { Fd = Fd, Events = Native.PollIn } };
            return Native.Poll(polled, 1, 0) > 0 && polled[0].REvents != 0;
        }

        /// <summary>Appends what was read after the last newline as a line of its own: the output ended there.</summary>
        public void TakeRest(List<string> lines)
        {
            var count = _decoder.GetChars(ReadOnlySpan<byte>.Empty, _chars, flush: true); // an unfinished character
            _splitter.Append(_chars.AsSpan(0, count), lines);
            if (_splitter.Flush() is { } rest)
                lines.Add(rest.EndsWith('\r') ? rest[..^1] : rest);
        }

        /// <summary>Decodes what was read and appends the lines it completes; nothing read means the pipe closed.</summary>
        private void Take(ReadOnlySpan<byte> bytes, List<string> lines)
        {
            var last = bytes.IsEmpty;
            var needed = _decoder.GetCharCount(bytes, last);
            if (needed > _chars.Length)
                _chars = new char[needed];
            var count = _decoder.GetChars(bytes, _chars, last);
            _splitter.Append(_chars.AsSpan(0, count), lines);
            if (!last)
                return;
            if (_splitter.Flush() is { } rest)
                lines.Add(rest);
            Open = false;
        }

        public void Dispose()
        {
            if (_referenced)
                handle.DangerousRelease();
            _referenced = false;
        }

        private static bool AddReference(SafePipeHandle handle)
        {
            var added = false;
            handle.DangerousAddRef(ref added);
            return added;
        }
    }

    private static class Native
    {
        public const short PollIn = 0x1;
        public const int EINTR = 4;
        public const int EAGAIN = 11;

        [StructLayout(LayoutKind.Sequential)]
        public struct PollFd
        {
            public int Fd;
            public short Events;
            public short REvents;
        }

        [DllImport("libc", EntryPoint = "poll", SetLastError = true)]
        public static extern int Poll([In, Out] PollFd[] fds, nuint count, int timeout);

        [DllImport("libc", EntryPoint = "read", SetLastError = true)]
        public static extern nint Read(int fd, [Out] byte[] buffer, nint count);
    }
}
