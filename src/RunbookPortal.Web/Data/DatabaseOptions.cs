namespace RunbookPortal.Web.Data;

public enum DatabaseProvider
{
    Sqlite,
    Postgres,
}

/// <summary>Section "Database".</summary>
public sealed class DatabaseOptions
{
    public const string Section = "Database";

    public DatabaseProvider Provider { get; set; } = DatabaseProvider.Sqlite;

    /// <summary>Folder of the SQLite file when ConnectionStrings:Sqlite is not set; created if missing.</summary>
    public string? DataDirectory { get; set; }

    public string ResolveDataDirectory() =>
        string.IsNullOrWhiteSpace(DataDirectory)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create), "RunbookPortal")
            : Path.GetFullPath(DataDirectory);
}

/// <summary>A start-up problem a person can act on; the host prints its message and exits.</summary>
public sealed class StartupException(string message, Exception? inner = null) : Exception(message, inner);
