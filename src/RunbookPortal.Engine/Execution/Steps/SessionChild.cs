using System.ComponentModel;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// A child process started with <c>posix_spawn</c> as the leader of a session (and process group) of its own — what
/// <c>setsid</c> does, without loading a second program for every step — with stdin on <c>/dev/null</c>, stdout and
/// stderr on pipes of its own, every signal at its default and none blocked, and its exit awaited by a thread of its own
/// (<c>waitpid</c>: the child is ours to reap, nothing else in the process waits for it).
/// <para>Every other descriptor of this process is close-on-exec (.NET opens them so), so the child holds nothing of
/// the portal's: not its database, not its sockets.</para>
/// </summary>
internal sealed class SessionChild : IDisposable
{
    private SessionChild(int pid, AnonymousPipeClientStream stdout, AnonymousPipeClientStream stderr, Task<int> exited)
    {
        Pid = pid;
        Stdout = stdout;
        Stderr = stderr;
        Exited = exited;
    }

    /// <summary>The child's pid, which is also its session and process group id.</summary>
    public int Pid { get; }

    /// <summary>The read end of the child's stdout.</summary>
    public AnonymousPipeClientStream Stdout { get; }

    /// <summary>The read end of the child's stderr.</summary>
    public AnonymousPipeClientStream Stderr { get; }

    /// <summary>Its exit code once it has exited (128 + the signal when a signal ended it, as a shell reports it).</summary>
    public Task<int> Exited { get; }

    /// <summary>Sends <paramref name="signal"/> to every process of the child's group (the kernel keeps the id while any member lives).</summary>
    public void SignalGroup(int signal) => _ = Native.Kill(-Pid, signal);

    /// <summary>
    /// Starts <paramref name="file"/> (looked up in this process's PATH when it has no '/') with <paramref name="arguments"/>
    /// (the first is the program's own name) in <paramref name="workingDirectory"/> with exactly <paramref name="environment"/>.
    /// </summary>
    /// <exception cref="Win32Exception">It could not be started (the message says why: no such file, not executable…).</exception>
    public static SessionChild Start(string file, IReadOnlyList<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string> environment)
    {
        if (!OperatingSystem.IsLinux())
            throw new Win32Exception("shell steps run on Linux only");
        var strings = new List<IntPtr>();
        var stdout = new int[] { -1, -1 };
        var stderr = new int[] { -1, -1 };
        var actions = Marshal.AllocHGlobal(Native.StructBytes);
        var attributes = Marshal.AllocHGlobal(Native.StructBytes);
        var signals = Marshal.AllocHGlobal(Native.SigSetBytes);
        var actionsMade = false;
        var attributesMade = false;
        try
        {
            if (Native.Pipe2(stdout, Native.OCloExec) != 0 || Native.Pipe2(stderr, Native.OCloExec) != 0)
                throw new Win32Exception(Marshal.GetLastPInvokeError(), "could not make the step's pipes");
            Check(Native.FileActionsInit(actions));
            actionsMade = true;
            Check(Native.AddOpen(actions, 0, "/dev/null", Native.ORdOnly, 0));
            Check(Native.AddDup2(actions, stdout[1], 1)); // the duplicates lose close-on-exec; the originals close at exec
            Check(Native.AddDup2(actions, stderr[1], 2));
            Check(Native.AddChdir(actions, workingDirectory));
            Check(Native.AttrInit(attributes));
            attributesMade = true;
            Check(Native.SigEmptySet(signals));
            Check(Native.AttrSetSigMask(attributes, signals)); // .NET blocks some signals in its threads: the step blocks none
            // And it ignores none (the runtime ignores SIGPIPE): every bit set, glibc's own two signals (32, 33) too, which
            // sigfillset leaves out and posix_spawn would otherwise leave ignored in the child.
            Marshal.Copy(Enumerable.Repeat((byte)0xFF, Native.SigSetBytes).ToArray(), 0, signals, Native.SigSetBytes);
            Check(Native.AttrSetSigDefault(attributes, signals));
            Check(Native.AttrSetFlags(attributes, Native.SetSid | Native.SetSigMask | Native.SetSigDef));

            var argv = new IntPtr[arguments.Count + 1];
            for (var i = 0; i < arguments.Count; i++)
                strings.Add(argv[i] = Marshal.StringToCoTaskMemUTF8(arguments[i]));
            var envp = new IntPtr[environment.Count + 1];
            var n = 0;
            foreach (var (name, value) in environment)
                strings.Add(envp[n++] = Marshal.StringToCoTaskMemUTF8(name + "=" + value));

            var failed = Native.SpawnP(out var pid, file, actions, attributes, argv, envp);
            if (failed != 0)
                throw new Win32Exception(failed);
            _ = Native.Close(stdout[1]);
            _ = Native.Close(stderr[1]);
            var child = new SessionChild(pid, Reader(stdout[0]), Reader(stderr[0]), Reap(pid));
            stdout[0] = stderr[0] = stdout[1] = stderr[1] = -1;
            return child;
        }
        finally
        {
            foreach (var fd in stdout.Concat(stderr).Where(fd => fd >= 0))
                _ = Native.Close(fd);
            foreach (var s in strings)
                Marshal.FreeCoTaskMem(s);
            if (actionsMade)
                _ = Native.FileActionsDestroy(actions);
            if (attributesMade)
                _ = Native.AttrDestroy(attributes);
            Marshal.FreeHGlobal(actions);
            Marshal.FreeHGlobal(attributes);
            Marshal.FreeHGlobal(signals);
        }
    }

    public void Dispose()
    {
        Stdout.Dispose();
        Stderr.Dispose();
    }

    private static void Check(int error)
    {
        if (error != 0)
            throw new Win32Exception(error);
    }

    private static AnonymousPipeClientStream Reader(int fd) =>
        new(PipeDirection.In, new SafePipeHandle((IntPtr)fd, ownsHandle: true));

    /// <summary>Waits for the child on a thread of its own (a small stack: it only waits) and reaps it.</summary>
    private static Task<int> Reap(int pid)
    {
        var exited = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var waiter = new Thread(() =>
        {
            while (true)
            {
                if (Native.WaitPid(pid, out var status, 0) == pid)
                {
                    // WIFEXITED: the low 7 bits are 0 and the code is the next byte; else those bits are the signal.
                    exited.SetResult((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f));
                    return;
                }
                var errno = Marshal.GetLastPInvokeError();
                if (errno != Native.EIntr)
                {
                    exited.SetException(new Win32Exception(errno, $"waiting for the step's process {pid} failed"));
                    return;
                }
            }
        }, maxStackSize: 64 * 1024)
        {
            IsBackground = true,
        };
        waiter.Start();
        return exited.Task;
    }

    private static class Native
    {
        /// <summary>More than glibc's posix_spawnattr_t (336 bytes) and posix_spawn_file_actions_t (80) on every architecture.</summary>
        public const int StructBytes = 1024;

        /// <summary>More than glibc's sigset_t (128 bytes).</summary>
        public const int SigSetBytes = 256;

        public const int ORdOnly = 0;
        public const int OCloExec = 0x80000;
        public const int EIntr = 4;
        public const short SetSigDef = 0x04;
        public const short SetSigMask = 0x08;
        public const short SetSid = 0x80;

        [DllImport("libc", EntryPoint = "pipe2", SetLastError = true)]
        public static extern int Pipe2(int[] fds, int flags);

        [DllImport("libc", EntryPoint = "close")]
        public static extern int Close(int fd);

        [DllImport("libc", EntryPoint = "kill")]
        public static extern int Kill(int pid, int signal);

        [DllImport("libc", EntryPoint = "waitpid", SetLastError = true)]
        public static extern int WaitPid(int pid, out int status, int options);

        [DllImport("libc", EntryPoint = "posix_spawn_file_actions_init")]
        public static extern int FileActionsInit(IntPtr actions);

        [DllImport("libc", EntryPoint = "posix_spawn_file_actions_destroy")]
        public static extern int FileActionsDestroy(IntPtr actions);

        [DllImport("libc", EntryPoint = "posix_spawn_file_actions_addopen")]
        public static extern int AddOpen(IntPtr actions, int fd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);

        [DllImport("libc", EntryPoint = "posix_spawn_file_actions_adddup2")]
        public static extern int AddDup2(IntPtr actions, int fd, int newFd);

        [DllImport("libc", EntryPoint = "posix_spawn_file_actions_addchdir_np")]
        public static extern int AddChdir(IntPtr actions, [MarshalAs(UnmanagedType.LPUTF8Str)] string path);

        [DllImport("libc", EntryPoint = "posix_spawnattr_init")]
        public static extern int AttrInit(IntPtr attributes);

        [DllImport("libc", EntryPoint = "posix_spawnattr_destroy")]
        public static extern int AttrDestroy(IntPtr attributes);

        [DllImport("libc", EntryPoint = "posix_spawnattr_setflags")]
        public static extern int AttrSetFlags(IntPtr attributes, short flags);

        [DllImport("libc", EntryPoint = "posix_spawnattr_setsigmask")]
        public static extern int AttrSetSigMask(IntPtr attributes, IntPtr signals);

        [DllImport("libc", EntryPoint = "posix_spawnattr_setsigdefault")]
        public static extern int AttrSetSigDefault(IntPtr attributes, IntPtr signals);

        [DllImport("libc", EntryPoint = "sigemptyset")]
        public static extern int SigEmptySet(IntPtr signals);

        [DllImport("libc", EntryPoint = "posix_spawnp")]
        public static extern int SpawnP(out int pid, [MarshalAs(UnmanagedType.LPUTF8Str)] string file, IntPtr actions, IntPtr attributes, IntPtr[] argv, IntPtr[] envp);
    }
}
