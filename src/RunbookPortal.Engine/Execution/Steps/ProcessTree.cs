using System.Diagnostics;
using System.Runtime.InteropServices;

namespace RunbookPortal.Engine.Execution.Steps;

/// <summary>
/// Starts a command as the leader of a new session and process group (through <c>setsid</c>), so that the command and
/// everything it starts — children, grandchildren, background jobs — can be killed together with one signal to the
/// group. Where <c>setsid</c> is missing (not Linux) it falls back to killing the tree of descendants it can find.
/// A process that deliberately leaves the group (<c>setsid</c>, <c>setpgid</c>) and is re-parented is out of reach.
/// </summary>
internal static class ProcessTree
{
    private const int SigKill = 9;

    private static readonly string? Setsid = new[] { "/usr/bin/setsid", "/bin/setsid" }.FirstOrDefault(File.Exists);

    /// <summary>Whether commands start in a process group of their own.</summary>
    public static bool UsesProcessGroups => Setsid is not null && !OperatingSystem.IsWindows();

    /// <summary>A start info for <paramref name="file"/> with <paramref name="arguments"/>, run in a new process group when possible.</summary>
    public static ProcessStartInfo StartInfo(string file, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo { UseShellExecute = false };
        if (UsesProcessGroups)
        {
            info.FileName = Setsid!;
            info.ArgumentList.Add(file);
        }
        else
        {
            info.FileName = file;
        }
        foreach (var argument in arguments)
            info.ArgumentList.Add(argument);
        return info;
    }

    /// <summary>Kills the process and everything in its process group (or, without groups, its descendants). Never throws.</summary>
    public static void Kill(Process process)
    {
        int id;
        try
        {
            id = process.Id;
        }
        catch (InvalidOperationException)
        {
            return;
        }
        if (UsesProcessGroups)
        {
            // The group id is the leader's pid; the kernel keeps the number while any member lives.
            _ = NativeKill(-id, SigKill);
            return;
        }
        try
        {
            process.Kill(entireProcessTree: true);
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            // It has exited already.
        }
    }

    /// <summary>Kills every process of the process group <paramref name="groupId"/>. Never throws.</summary>
    public static void KillGroup(int groupId)
    {
        if (groupId > 1 && !OperatingSystem.IsWindows())
            _ = NativeKill(-groupId, SigKill);
    }

    /// <summary>The pids of <paramref name="parentId"/>'s children (Linux: from /proc); empty where that cannot be read.</summary>
    public static IReadOnlyList<int> Children(int parentId)
    {
        var children = new List<int>();
        try
        {
            var listed = $"/proc/{parentId}/task/{parentId}/children";
            if (File.Exists(listed))
            {
                foreach (var part in File.ReadAllText(listed).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    if (int.TryParse(part, System.Globalization.CultureInfo.InvariantCulture, out var pid))
                        children.Add(pid);
                }
                return children;
            }
            foreach (var pid in ProcessIds())
            {
                if (Stat(pid) is { } stat && stat.Parent == parentId)
                    children.Add(pid);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // /proc is not readable here.
        }
        return children;
    }

    /// <summary>Up to this many process ids handed out during a step are looked at one by one; beyond, all of /proc is.</summary>
    private const int WindowLimit = 1024;

    /// <summary>The last process id the kernel handed out in this pid namespace (Linux), or null where it cannot be read.</summary>
    public static int? LastPid() => ReadNumber("/proc/sys/kernel/ns_last_pid");

    /// <summary>
    /// Kills every process of the session <paramref name="sessionId"/>, its leader excepted, whose id was handed out
    /// after <paramref name="after"/> (an earlier <see cref="LastPid"/>): what a command left running, in its own
    /// process group or in another one of the session. A process in the leader's own group is killed alone. The ids
    /// in between are looked at one by one; all of /proc is read instead when there are many, when the ids wrapped
    /// around (at <c>pid_max</c>), or when <paramref name="everywhere"/> says the command ran long enough for them to
    /// have wrapped around all the way.
    /// </summary>
    public static void KillSessionBornAfter(int sessionId, int after, bool everywhere)
    {
        if (LastPid() is not { } last || last == after)
            return;
        if (!everywhere && last > after && last - after <= WindowLimit)
        {
            for (var pid = after + 1; pid <= last; pid++)
                KillIfInSession(pid, sessionId);
            return;
        }
        foreach (var pid in ProcessIds())
            KillIfInSession(pid, sessionId);
    }

    /// <summary>The ids of all processes (Linux: the numbered folders of /proc); none where /proc cannot be read.</summary>
    private static IEnumerable<int> ProcessIds()
    {
        string[] folders;
        try
        {
            folders = Directory.Exists("/proc") ? Directory.GetDirectories("/proc") : [];
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            folders = []; // /proc is not readable here
        }
        foreach (var folder in folders)
        {
            if (int.TryParse(Path.GetFileName(folder), System.Globalization.CultureInfo.InvariantCulture, out var pid))
                yield return pid;
        }
    }

    private static void KillIfInSession(int pid, int sessionId)
    {
        if (pid <= 1 || pid == sessionId || Stat(pid) is not { } stat || stat.Session != sessionId)
            return;
        _ = stat.Group != sessionId ? NativeKill(-stat.Group, SigKill) : NativeKill(pid, SigKill);
    }

    /// <summary>The parent, process group and session of <paramref name="pid"/>, from /proc; null when it has gone.</summary>
    private static (int Parent, int Group, int Session)? Stat(int pid)
    {
        Span<byte> buffer = stackalloc byte[512];
        var read = ReadFile($"/proc/{pid}/stat", buffer);
        if (read <= 0)
            return null;
        // "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses, so read after the last ')'.
        var text = System.Text.Encoding.UTF8.GetString(buffer[..read]);
        var fields = text[(text.LastIndexOf(')') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length > 3
            && int.TryParse(fields[1], System.Globalization.CultureInfo.InvariantCulture, out var parent)
            && int.TryParse(fields[2], System.Globalization.CultureInfo.InvariantCulture, out var group)
            && int.TryParse(fields[3], System.Globalization.CultureInfo.InvariantCulture, out var session)
            ? (parent, group, session)
            : null;
    }

    private static int? ReadNumber(string path)
    {
        Span<byte> buffer = stackalloc byte[32];
        var read = ReadFile(path, buffer);
        return read > 0 && int.TryParse(buffer[..read].TrimEnd((byte)'\n'), System.Globalization.CultureInfo.InvariantCulture, out var value)
            ? value
            : null;
    }

    /// <summary>Reads a small file through libc (no exception when it does not exist: a process that ended is common).</summary>
    private static int ReadFile(string path, Span<byte> buffer)
    {
        if (OperatingSystem.IsWindows())
            return -1;
        var fd = NativeOpen(path, 0x80000); // O_RDONLY | O_CLOEXEC: no process started meanwhile inherits it
        if (fd < 0)
            return -1;
        try
        {
            return (int)NativeRead(fd, ref MemoryMarshal.GetReference(buffer), buffer.Length);
        }
        finally
        {
            _ = NativeClose(fd);
        }
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeKill(int pid, int signal);

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int NativeOpen([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    private static extern nint NativeRead(int fd, ref byte buffer, nint count);

    [DllImport("libc", EntryPoint = "close", SetLastError = true)]
    private static extern int NativeClose(int fd);
}
