using System.ComponentModel;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// One run of one command as the leader of a new session and process group (see <see cref="SessionChild"/>), optionally
/// as another user (through <c>setpriv</c>), with stdin closed and stdout and stderr read apart, line by line.
/// <list type="bullet">
/// <item>It ends when its process exits; then whatever it left running in its group is killed, what is left in the
/// pipes is read, and the pipes are closed: a process that left the group cannot hold the step open, and its later
/// output goes nowhere (every step has pipes of its own).</item>
/// <item>Stopping it (the token) sends SIGTERM to the whole group, waits the grace period, then sends SIGKILL.</item>
/// </list>
/// </summary>
internal sealed class StepProcess
{
    private const int SigTerm = 15;
    private const int SigKill = 9;

    /// <summary>
    /// Once the step's group is gone, how long its pipes may stay open and empty before they are closed: only a process
    /// that left the group holds them longer.
    /// </summary>
    private static readonly TimeSpan DrainLimit = TimeSpan.FromMilliseconds(250);

    /// <summary>The longest the pipes are read once the step's group is gone, even while a process that left it keeps writing.</summary>
    private static readonly TimeSpan DrainMost = TimeSpan.FromSeconds(5);

    /// <summary>Lines read and not yet handed on beyond which reading waits (and so does the step, on its full pipe).</summary>
    private const int MaxQueued = 2000;

    private static readonly string? Setpriv = new[] { "/usr/bin/setpriv", "/bin/setpriv" }.FirstOrDefault(File.Exists);

    /// <summary>How a stopped step ended.</summary>
    public sealed record Outcome(int ExitCode, string? Stopped);

    /// <summary>
    /// Runs <paramref name="file"/> with <paramref name="arguments"/> in <paramref name="workingDirectory"/> with exactly
    /// <paramref name="environment"/>, and hands each line to <paramref name="line"/> ("stdout" or "stderr").
    /// </summary>
    /// <exception cref="Win32Exception">The command could not be started.</exception>
    public static async Task<Outcome> RunAsync(
        string file,
        IEnumerable<string> arguments,
        string workingDirectory,
        IReadOnlyDictionary<string, string> environment,
        UnixAccount? runAs,
        TimeSpan killGrace,
        Func<string, string, ValueTask> line,
        CancellationToken cancellationToken)
    {
        var command = new List<string>();
        if (runAs is not null)
        {
            if (Setpriv is null)
                throw new Win32Exception("setpriv (util-linux) is needed to run steps as another user and is not installed");
            command.AddRange([Setpriv, $"--reuid={runAs.Uid}", $"--regid={runAs.Gid}", "--init-groups", "--"]);
        }
        command.Add(file);
        command.AddRange(arguments);

        cancellationToken.ThrowIfCancellationRequested(); // stopped before it started: it does not start
        using var process = SessionChild.Start(command[0], command, workingDirectory, environment);

        // Reading and delivering are apart: the pipes are read at once (so what the step wrote before it ended is taken in
        // within moments of its end), and lines are handed on in order at the journal's pace. While the step runs, a
        // reader waits when MaxQueued lines wait for delivery, and the step waits on its full pipe: back-pressure.
        var queue = System.Threading.Channels.Channel.CreateUnbounded<(string Stream, string Text)>(
            new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });
        using var slots = new SemaphoreSlim(MaxQueued);
        using var ended = new CancellationTokenSource();
        using var outputFailed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        async ValueTask Enqueue(string stream, string text)
        {
            if (!ended.IsCancellationRequested)
            {
                try
                {
                    await slots.WaitAsync(ended.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // The step ended: what is left in its pipes is taken in without waiting.
                }
            }
            queue.Writer.TryWrite((stream, text));
        }
        var delivering = DeliverAsync();
        async Task DeliverAsync()
        {
            try
            {
                await foreach (var (stream, text) in queue.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    await line(stream, text).ConfigureAwait(false);
                    slots.Release();
                }
            }
            catch
            {
                await outputFailed.CancelAsync().ConfigureAwait(false); // recording failed: stop the step, then report it
                throw;
            }
        }

        var readers = Task.WhenAll(
            ReadLinesAsync(process.Stdout, "stdout", Enqueue),
            ReadLinesAsync(process.Stderr, "stderr", Enqueue));

        string? stopped = null;
        try
        {
            await process.Exited.WaitAsync(outputFailed.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.SignalGroup(SigTerm);
            try
            {
                await process.Exited.WaitAsync(killGrace, CancellationToken.None).ConfigureAwait(false);
                stopped = "stopped with SIGTERM";
            }
            catch (TimeoutException)
            {
                process.SignalGroup(SigKill);
                await process.Exited.ConfigureAwait(false);
                stopped = $"it did not stop within {Runbooks.DurationParser.Format(killGrace)} of SIGTERM and was killed with SIGKILL";
            }
        }
        process.SignalGroup(SigKill); // what the step left running in its group goes with it
        await ended.CancelAsync().ConfigureAwait(false);

        // Everything the step wrote is in its pipes now (it could not have ended with a full pipe): read on until the
        // readers reach the end, however long a busy machine takes to run them. Pipes that stay open and empty are held
        // by a process that left the group: they are closed (it gets SIGPIPE when it writes again), and what it writes
        // from then on is not the step's.
        var draining = Stopwatch.StartNew();
        while (await Task.WhenAny(readers, Task.Delay(DrainLimit, CancellationToken.None)).ConfigureAwait(false) != readers)
        {
            if (draining.Elapsed >= DrainMost || (Unread(process.Stdout) == 0 && Unread(process.Stderr) == 0))
                break;
        }
        _ = readers.ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
        // A read still waiting ends with the close; lines read before it are still delivered.
        process.Dispose();
        try
        {
            await readers.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The pipe closed under a waiting read (what was read before is delivered).
        }
        queue.Writer.TryComplete();
        await delivering.ConfigureAwait(false); // every line the step wrote is handed on before the step ends; a journal failure throws here
        return new Outcome(await process.Exited.ConfigureAwait(false), stopped);
    }

    /// <summary>Reads one pipe to its end, as UTF-8 lines (see <see cref="LineSplitter"/>); the last line may lack a newline.</summary>
    private static async Task ReadLinesAsync(Stream pipe, string stream, Func<string, string, ValueTask> deliver)
    {
        var decoder = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetDecoder();
        var splitter = new LineSplitter();
        var bytes = new byte[16384];
        var chars = new char[Encoding.UTF8.GetMaxCharCount(bytes.Length)];
        var lines = new List<string>();
        while (true)
        {
            var read = await pipe.ReadAsync(bytes).ConfigureAwait(false);
            var count = decoder.GetChars(bytes, 0, read, chars, 0, flush: read == 0);
            splitter.Append(chars.AsSpan(0, count), lines);
            if (read == 0 && splitter.Flush() is { } rest)
                lines.Add(rest.EndsWith('\r') ? rest[..^1] : rest);
            foreach (var text in lines)
                await deliver(stream, text).ConfigureAwait(false);
            lines.Clear();
            if (read == 0)
                return;
        }
    }

    /// <summary>The bytes waiting in a pipe (FIONREAD); -1 when that cannot be told.</summary>
    private static int Unread(Stream pipe)
    {
        if (pipe is not System.IO.Pipes.PipeStream { SafePipeHandle: { IsInvalid: false, IsClosed: false } handle })
            return -1;
        return Native.Ioctl((int)handle.DangerousGetHandle(), Native.FionRead, out var count) == 0 ? count : -1;
    }

    private static class Native
    {
        public const ulong FionRead = 0x541B;

        [DllImport("libc", EntryPoint = "ioctl", SetLastError = true)]
        public static extern int Ioctl(int fd, ulong request, out int count);
    }
}

/// <summary>A user of this machine that shell steps run as (<c>Engine:RunAs</c>).</summary>
public sealed record UnixAccount(string Name, uint Uid, uint Gid, string Home)
{
    /// <summary>Looks the user up (getpwnam); null when there is no such user.</summary>
    public static UnixAccount? Find(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (OperatingSystem.IsWindows())
            return null;
        var entry = Native.GetPwNam(name);
        if (entry == IntPtr.Zero)
            return null;
        var passwd = Marshal.PtrToStructure<Native.Passwd>(entry);
        return new UnixAccount(name, passwd.Uid, passwd.Gid, Marshal.PtrToStringUTF8(passwd.Dir) ?? "/");
    }

    /// <summary>Whether this process may switch to another user (it runs as root).</summary>
    public static bool CanSwitchUser => !OperatingSystem.IsWindows() && Native.GetEUid() == 0;

    /// <summary>Gives <paramref name="path"/> to this user (not following a symbolic link).</summary>
    /// <exception cref="IOException">It could not.</exception>
    public void Own(string path)
    {
        if (Native.LChown(path, Uid, Gid) != 0)
            throw new IOException($"could not give {path} to the user {Name} (errno {Marshal.GetLastPInvokeError()})");
    }

    private static class Native
    {
        [StructLayout(LayoutKind.Sequential)]
        public struct Passwd
        {
            public IntPtr Name;
            public IntPtr Password;
            public uint Uid;
            public uint Gid;
            public IntPtr Gecos;
            public IntPtr Dir;
            public IntPtr Shell;
        }

        [DllImport("libc", EntryPoint = "getpwnam", SetLastError = true)]
        public static extern IntPtr GetPwNam([MarshalAs(UnmanagedType.LPUTF8Str)] string name);

        [DllImport("libc", EntryPoint = "geteuid")]
        public static extern uint GetEUid();

        [DllImport("libc", EntryPoint = "lchown", SetLastError = true)]
        public static extern int LChown([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint uid, uint gid);
    }
}
