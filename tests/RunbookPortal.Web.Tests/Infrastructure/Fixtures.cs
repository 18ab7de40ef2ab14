namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>One portal on one fresh database for a test class; its tests use unique names so none depends on another.</summary>
public abstract class PortalFixture : IAsyncLifetime
{
    private PortalFactory? _factory;
    public PortalFactory Portal => _factory ?? throw new InvalidOperationException("The fixture is not initialised.");

    protected abstract Task<TestDatabase> CreateDatabaseAsync();

    public async Task InitializeAsync()
    {
        _factory = new PortalFactory(await CreateDatabaseAsync());
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
