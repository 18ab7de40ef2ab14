namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>One portal on one fresh database for a test class; its tests use unique names so none depends on another.</summary>
public abstract class PortalFixture : IAsyncLifetime
{
    private PortalFactory? _factory;
    public PortalFactory Portal => _factory ?? throw new InvalidOperationException("The fixture is not initialised.");

    protected abstract Task<TestDatabase> CreateDatabaseAsync();

    protected virtual IDictionary<string, string?>? Settings => null;

    public async Task InitializeAsync()
    {
        _factory = new PortalFactory(await CreateDatabaseAsync(), Settings);
        _ = _factory.Server; // start now: migrations and bootstrap run here
    }

    public async Task DisposeAsync()
    {
        if (_factory is not null)
            await _factory.DisposeAsync();
    }
}

public sealed class SqlitePortalFixture : PortalFixture
{
    protected override Task<TestDatabase> CreateDatabaseAsync() => Task.FromResult(TestDatabase.Sqlite());
}

public sealed class PostgresPortalFixture : PortalFixture
{
    protected override Task<TestDatabase> CreateDatabaseAsync() => TestDatabase.PostgresAsync();
}

/// <summary>A portal whose worker polls often, for execution tests.</summary>
public sealed class SqliteEngineFixture : PortalFixture
{
    protected override Task<TestDatabase> CreateDatabaseAsync() => Task.FromResult(TestDatabase.Sqlite());
    protected override IDictionary<string, string?>? Settings => EngineSettings.Fast;
}

public sealed class PostgresEngineFixture : PortalFixture
{
    protected override Task<TestDatabase> CreateDatabaseAsync() => TestDatabase.PostgresAsync();
    protected override IDictionary<string, string?>? Settings => EngineSettings.Fast;
}

public static class EngineSettings
{
    public static readonly Dictionary<string, string?> Fast = new()
    {
        ["Engine:PollInterval"] = "00:00:00.200",
        ["Engine:LeaseDuration"] = "00:00:06", // a node fenced off (KillGrace 1 s) stops its step after 4 s without a renewal
        ["Engine:KillGrace"] = "00:00:01", // at most half the lease
        ["Engine:MaxConcurrentExecutions"] = "8",
    };
}
