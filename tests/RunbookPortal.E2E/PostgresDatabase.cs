using Npgsql;

namespace RunbookPortal.E2E;

/// <summary>
/// A fresh PostgreSQL database on the server of RBP_TEST_POSTGRES (an admin connection string; default the one
/// tests/scripts/test.sh sets up), dropped when disposed. An unreachable server is a failure, never a skip.
/// </summary>
public sealed class PostgresDatabase : IAsyncDisposable
{
    private const string DefaultAdminConnection = "Host=127.0.0.1;Port=5432;Username=rbp_test;Password=rbp_test;Database=postgres";
    private readonly string _admin;
    private readonly string _name;

    private PostgresDatabase(string admin, string name)
    {
        _admin = admin;
        _name = name;
        ConnectionString = new NpgsqlConnectionStringBuilder(admin) { Database = name }.ToString();
    }

    public string ConnectionString { get; }

    public static async Task<PostgresDatabase> CreateAsync()
    {
        var admin = Environment.GetEnvironmentVariable("RBP_TEST_POSTGRES") is { Length: > 0 } configured ? configured : DefaultAdminConnection;
        var name = "rbp_e2e_" + Guid.NewGuid().ToString("N")[..16];
        try
        {
            await using var conn = new NpgsqlConnection(admin);
            await conn.OpenAsync();
            await using var cmd = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", conn);
            await cmd.ExecuteNonQueryAsync();
        }
        catch (Exception ex) when (ex is NpgsqlException or System.Net.Sockets.SocketException or TimeoutException)
        {
            throw new InvalidOperationException(
                $"PostgreSQL is required for this test but is not reachable ({ex.Message}). Run tests/scripts/test.sh, which installs and starts it, or set RBP_TEST_POSTGRES to an admin connection string.", ex);
        }
        return new PostgresDatabase(admin, name);
    }

    public async ValueTask DisposeAsync()
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
            // Best effort: a leftover throwaway database changes no result.
        }
    }
}
