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
            if (!Directory.Exists("/proc"))
                return children;
            foreach (var folder in Directory.EnumerateDirectories("/proc"))
            {
                if (!int.TryParse(Path.GetFileName(folder), System.Globalization.CultureInfo.InvariantCulture, out var pid))
                    continue;
                try
                {
                    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
                    var stat = File.ReadAllText(Path.Combine(folder, "stat"));
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    if (fields.Length > 1 && fields[1] == parentId.ToString(System.Globalization.CultureInfo.InvariantCulture))
                        children.Add(pid);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    // The process ended while we looked.
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // /proc is not readable here.
        }
        return children;
    }

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int NativeKill(int pid, int signal);
}
