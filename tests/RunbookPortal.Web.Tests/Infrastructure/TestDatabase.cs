using Npgsql;

namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>A fresh, real database owned by one fixture: a SQLite file in a temp folder, or a new PostgreSQL database.</summary>
public abstract class TestDatabase : IAsyncDisposable
{
    public abstract string Provider { get; }
    public abstract IEnumerable<KeyValuePair<string, string?>> Settings { get; }
    public abstract ValueTask DisposeAsync();

    public static TestDatabase Sqlite() => new SqliteTestDatabase();

    public static async Task<TestDatabase> PostgresAsync() => await PostgresTestDatabase.CreateAsync();

    /// <summary>A second view of a database another portal owns: not dropped when this portal is disposed.</summary>
    public static TestDatabase Shared(TestDatabase owner) => new SharedTestDatabase(owner);

    private sealed class SharedTestDatabase(TestDatabase inner) : TestDatabase
    {
        public override string Provider => inner.Provider;
        public override IEnumerable<KeyValuePair<string, string?>> Settings => inner.Settings;
        public override ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}

internal sealed class SqliteTestDatabase : TestDatabase
{
    public string Folder { get; } = Directory.CreateTempSubdirectory("rbp-test-").FullName;
    public override string Provider => "Sqlite";
    public string FilePath => Path.Combine(Folder, "runbookportal.db");

    public override IEnumerable<KeyValuePair<string, string?>> Settings =>
    [
        new("Database:Provider", "Sqlite"),
        new("Database:DataDirectory", Folder),
    ];

    public override ValueTask DisposeAsync()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(Folder, recursive: true); } catch (IOException) { }
        return ValueTask.CompletedTask;
    }
}

internal sealed class PostgresTestDatabase : TestDatabase
{
    /// <summary>Where tests/scripts/test.sh puts its server; override with RBP_TEST_POSTGRES.</summary>
    public const string DefaultAdminConnection = "Host=127.0.0.1;Port=5432;Username=rbp_test;Password=rbp_test;Database=postgres";

    private readonly string _admin;
    private readonly string _name;

    private PostgresTestDatabase(string admin, string name)
    {
        _admin = admin;
        _name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(admin) { Database = name, Pooling = true }.ToString();
    }

    public string ConnectionString { get; }
    public override string Provider => "Postgres";

    public override IEnumerable<KeyValuePair<string, string?>> Settings =>
    [
        new("Database:Provider", "Postgres"),
        new("ConnectionStrings:Postgres", ConnectionString),
    ];

    public static async Task<PostgresTestDatabase> CreateAsync()
    {
        var admin = Environment.GetEnvironmentVariable("RBP_TEST_POSTGRES") is { Length: > 0 } configured ? configured : DefaultAdminConnection;
        var name = "rbp_t_" + Guid.NewGuid().ToString("N")[..16];
        try
        {
            await using var conn = new NpgsqlConnection(admin);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            // Never a skip: the PostgreSQL half of the suite is as required as the SQLite half.
            throw new InvalidOperationException(
                $"PostgreSQL is required for these tests but is not reachable ({ex.Message}). Run tests/scripts/test.sh, which installs and starts it, or set RBP_TEST_POSTGRES to an admin connection string.", ex);
        }
        return new PostgresTestDatabase(admin, name);
    }

    public override async ValueTask DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        try
        {
            await using var conn = new NpgsqlConnection(_admin);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"DROP DATABASE IF EXISTS \"{_name}\" WITH (FORCE)", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (NpgsqlException)
        {
            // Best effort: a leftover throwaway database does not change any result.
        }
    }
}
