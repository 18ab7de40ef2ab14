using Microsoft.AspNetCore.DataProtection;
using Microsoft.Data.Sqlite;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Npgsql;
using RunbookPortal.Web.Features.Executions;

namespace RunbookPortal.Web.Data;

public static class DatabaseExtensions
{
    public static IHostApplicationBuilder AddPortalDatabase(this IHostApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(DatabaseOptions.Section).Get<DatabaseOptions>() ?? new DatabaseOptions();
        builder.Services.AddOptions<DatabaseOptions>().BindConfiguration(DatabaseOptions.Section);

        switch (options.Provider)
        {
            case DatabaseProvider.Sqlite:
                var sqlite = SqliteConnectionString(builder.Configuration, options);
                builder.Services.AddDbContext<PortalDbContext, SqlitePortalDbContext>(o => o.UseSqlite(sqlite).AddInterceptors(SqliteBusyTimeout.Instance));
                break;
            case DatabaseProvider.Postgres:
                var pg = builder.Configuration.GetConnectionString("Postgres");
                if (string.IsNullOrWhiteSpace(pg))
                    throw new StartupException("Database:Provider is Postgres but ConnectionStrings:Postgres is not set. Set it, for example ConnectionStrings__Postgres=\"Host=db;Database=runbookportal;Username=...;Password=...\".");
                builder.Services.AddDbContext<PortalDbContext, PostgresPortalDbContext>(o => o.UseNpgsql(ForNodes(pg, builder.Configuration)));
                break;
            default:
                throw new StartupException($"Database:Provider '{options.Provider}' is not supported; use Sqlite or Postgres.");
        }

        // Cookie, antiforgery and secret keys live in the database: they survive restarts and are shared by all nodes;
        // each key is encrypted with a certificate the database does not hold (KeyRingProtection).
        var keyRing = KeyRingProtection.Load(builder.Configuration, options);
        builder.Services.AddSingleton(keyRing);
        keyRing.Apply(builder.Services.AddDataProtection().SetApplicationName("RunbookPortal").PersistKeysToDbContext<PortalDbContext>());
        builder.Services.AddHealthChecks().AddCheck<DatabaseHealthCheck>("database", tags: ["ready"]);
        return builder;
    }

    /// <summary>
    /// The settings every node's PostgreSQL sessions need, unless the connection string says otherwise:
    /// <list type="bullet">
    /// <item>A node keeps well below PostgreSQL's default 100 connections (so several nodes fit); beyond it, work
    /// waits for a connection instead of failing.</item>
    /// <item>The server ends a session that sits in an open transaction for a third of the lease
    /// (<c>idle_in_transaction_session_timeout</c>): a node cut off from the database in the middle of a transaction
    /// (its claim pass holds the claim lock, its journal a run's row) would otherwise hold those locks until TCP gives
    /// up, hours later, and every other node's claim pass would wait on them instead of taking its runs over. The
    /// portal's own transactions last milliseconds.</item>
    /// </list>
    /// </summary>
    private static string ForNodes(string connectionString, IConfiguration configuration)
    {
        var csb = new NpgsqlConnectionStringBuilder(connectionString);
        if (!connectionString.Contains("Maximum Pool Size", StringComparison.OrdinalIgnoreCase) && !connectionString.Contains("Max Pool Size", StringComparison.OrdinalIgnoreCase))
            csb.MaxPoolSize = 30;
        if (csb.Options?.Contains("idle_in_transaction_session_timeout", StringComparison.OrdinalIgnoreCase) != true)
        {
            var lease = configuration.GetSection(EngineOptions.Section).GetValue<TimeSpan?>(nameof(EngineOptions.LeaseDuration)) ?? new EngineOptions().LeaseDuration;
            var limit = (long)Math.Max(1000, (lease / 3).TotalMilliseconds);
            csb.Options = string.Join(' ', new[] { csb.Options, $"-c idle_in_transaction_session_timeout={limit}" }.Where(o => !string.IsNullOrWhiteSpace(o)));
        }
        return csb.ToString();
    }

    private static string SqliteConnectionString(IConfiguration configuration, DatabaseOptions options)
    {
        var configured = configuration.GetConnectionString("Sqlite");
        var csb = new SqliteConnectionStringBuilder(string.IsNullOrWhiteSpace(configured)
            ? $"Data Source={Path.Combine(options.ResolveDataDirectory(), "runbookportal.db")}"
            : configured);
        if (csb.Mode is SqliteOpenMode.ReadWriteCreate or SqliteOpenMode.ReadWrite && !string.IsNullOrEmpty(csb.DataSource) && csb.DataSource != ":memory:")
        {
            var file = Path.GetFullPath(csb.DataSource);
            var folder = Path.GetDirectoryName(file);
            if (!string.IsNullOrEmpty(folder))
            {
                try
                {
                    if (string.IsNullOrWhiteSpace(configured))
                        DataFolder.Secure(folder, DataFolder.StepsRunAsAnotherUser(configuration));
                    else
                        Directory.CreateDirectory(folder); // a folder the administrator chose keeps its mode
                    DataFolder.SecureFile(file);
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                    throw new StartupException($"Cannot create the data folder '{folder}' for the SQLite database: {ex.Message} Set Database:DataDirectory to a writable folder.", ex);
                }
            }
        }
        csb.Pooling = true;
        csb.DefaultTimeout = 30;
        return csb.ToString();
    }

    /// <summary>
    /// Connects, refuses a database that a newer version has migrated, applies pending migrations.
    /// Every failure becomes a <see cref="StartupException"/> that says what to do.
    /// </summary>
    public static async Task MigrateDatabaseAsync(this IServiceProvider services, CancellationToken ct = default)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var provider = scope.ServiceProvider.GetRequiredService<Microsoft.Extensions.Options.IOptions<DatabaseOptions>>().Value.Provider;
        var where = Describe(db);

        try
        {
            // SQLite creates its file on first use; a server database must already be there.
            if (provider == DatabaseProvider.Postgres && !await db.Database.CanConnectAsync(ct))
                throw new StartupException($"Cannot reach the {provider} database at {where}. Check ConnectionStrings:{provider} and that the server is running and the database exists.");

            var known = db.Database.GetMigrations().ToHashSet(StringComparer.Ordinal);
            // A new database has no history table yet; asking it for applied migrations would log a failed query.
            var history = db.GetService<IHistoryRepository>();
            var applied = await history.ExistsAsync(ct) ? await db.Database.GetAppliedMigrationsAsync(ct) : [];
            var unknown = applied.Where(m => !known.Contains(m)).ToList();
            if (unknown.Count > 0)
                throw new StartupException($"The {provider} database at {where} is newer than this version of RunbookPortal (it has migrations this version does not know: {string.Join(", ", unknown)}). Run the newer version, or restore a backup made for this one.");

            if (provider == DatabaseProvider.Sqlite)
                await db.Database.ExecuteSqlRawAsync("PRAGMA journal_mode=WAL;", ct);
            await db.Database.MigrateAsync(ct);
        }
        catch (StartupException)
        {
            throw;
        }
        catch (Exception ex) when (ex is NpgsqlException or SqliteException or InvalidOperationException or TimeoutException)
        {
            throw new StartupException($"Cannot open the {provider} database at {where}: {ex.GetBaseException().Message}", ex);
        }
    }

    /// <summary>Where the database is, without any password.</summary>
    private static string Describe(PortalDbContext db)
    {
        var cs = db.Database.GetConnectionString() ?? "";
        if (db.Database.IsSqlite())
            return $"'{new SqliteConnectionStringBuilder(cs).DataSource}'";
        var b = new NpgsqlConnectionStringBuilder(cs);
        return $"'{b.Host}:{b.Port}/{b.Database}'";
    }
}

internal sealed class DatabaseHealthCheck(PortalDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            return await db.Database.CanConnectAsync(cancellationToken)
                ? HealthCheckResult.Healthy("The database is reachable.")
                : HealthCheckResult.Unhealthy("The database is not reachable.");
        }
        catch (Exception ex)
        {
            return HealthCheckResult.Unhealthy("The database is not reachable.", ex);
        }
    }
}

/// <summary>
/// SQLite has one writer. With a busy timeout SQLite itself waits for the write lock in short steps, instead of
/// the provider's coarse retry after SQLITE_BUSY (150 ms), which would add that much to every contended write.
/// </summary>
internal sealed class SqliteBusyTimeout : Microsoft.EntityFrameworkCore.Diagnostics.DbConnectionInterceptor
{
    public static readonly SqliteBusyTimeout Instance = new();

    public override void ConnectionOpened(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionEndEventData eventData) => Apply(connection);

    public override Task ConnectionOpenedAsync(System.Data.Common.DbConnection connection, Microsoft.EntityFrameworkCore.Diagnostics.ConnectionEndEventData eventData, CancellationToken cancellationToken = default)
    {
        Apply(connection);
        return Task.CompletedTask;
    }

    private static void Apply(System.Data.Common.DbConnection connection)
    {
        using var command = connection.CreateCommand();
        command.CommandText = "PRAGMA busy_timeout = 30000;";
        command.ExecuteNonQuery();
    }
}
