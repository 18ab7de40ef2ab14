namespace RunbookPortal.Web.Data;

/// <summary>
/// The portal's data folder (the SQLite database, the shell steps' <c>runs</c> folder) is private: the folder 0700
/// and the database file 0600 (SQLite gives its -wal and -shm files the database's mode). With <c>Engine:RunAs</c>
/// the folder is 0711 — the steps' user may pass through it to its own folder under <c>runs</c>, but can list and
/// read nothing in it.
/// </summary>
internal static class DataFolder
{
    private const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode Passable = Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Makes <paramref name="folder"/> if missing and gives it its mode.</summary>
    public static void Secure(string folder, bool stepsRunAsAnotherUser)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(folder);
            return;
        }
        Directory.CreateDirectory(folder, Private);
        File.SetUnixFileMode(folder, stepsRunAsAnotherUser ? Passable : Private);
    }

    /// <summary>Makes the file <paramref name="path"/> (empty) if missing, readable and writable by the portal's user only.</summary>
    public static void SecureFile(string path)
    {
        if (OperatingSystem.IsWindows())
            return;
        if (!File.Exists(path))
        {
            using var created = new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile });
            return;
        }
        File.SetUnixFileMode(path, PrivateFile);
    }

    /// <summary>Whether <c>Engine:RunAs</c> is set.</summary>
    public static bool StepsRunAsAnotherUser(IConfiguration configuration) =>
        !string.IsNullOrWhiteSpace(configuration["Engine:RunAs"]);
}
