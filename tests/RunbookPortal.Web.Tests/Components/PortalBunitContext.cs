using System.Security.Claims;
using Bunit;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Components;

/// <summary>
/// The one bUnit setup: MudBlazor services, loose JS interop, the portal's real authorization policies and a
/// signed-in user with the given roles.
/// </summary>
public abstract class PortalBunitContext : BunitContext, IAsyncLifetime
{
    protected PortalBunitContext()
    {
        JSInterop.Mode = JSRuntimeMode.Loose;
        Services.AddMudServices(o => o.SnackbarConfiguration.ShowTransitionDuration = 0);
        Services.AddAuthorizationCore(Policies.Add);
        // bUnit registers a placeholder that refuses to decide; the portal's real policy evaluation replaces it.
        Services.AddTransient<IAuthorizationService, DefaultAuthorizationService>();
    }

    private Microsoft.AspNetCore.Components.RendererInfo _rendererInfo = new("Server", isInteractive: true);
    private bool _rendererInfoSet;

    /// <summary>How the components under test are rendered: in the portal's circuit unless a test says prerendered.</summary>
    protected void RenderAs(Microsoft.AspNetCore.Components.RendererInfo info) => _rendererInfo = info;

    // The renderer exists only once the services are all registered (the first render): its info is set then.
    private void EnsureRendererInfo()
    {
        if (_rendererInfoSet)
            return;
        _rendererInfoSet = true;
        SetRendererInfo(_rendererInfo);
    }

    public new IRenderedComponent<TComponent> Render<TComponent>(Action<ComponentParameterCollectionBuilder<TComponent>>? parameterBuilder = null)
        where TComponent : Microsoft.AspNetCore.Components.IComponent
    {
        EnsureRendererInfo();
        return base.Render(parameterBuilder);
    }

    public new IRenderedComponent<Microsoft.AspNetCore.Components.IComponent> Render(Microsoft.AspNetCore.Components.RenderFragment renderFragment)
    {
        EnsureRendererInfo();
        return base.Render(renderFragment);
    }

    private SqliteTestDatabase? _store;

    Task IAsyncLifetime.InitializeAsync() => Task.CompletedTask;

    // MudBlazor services are only asynchronously disposable.
    async Task IAsyncLifetime.DisposeAsync()
    {
        await base.DisposeAsync();
        if (_store is not null)
            await _store.DisposeAsync();
    }

    /// <summary>
    /// The services the layout's live parts read from (the approval badge and alerts): a real, migrated SQLite
    /// database of this test's own, the notifier and the approval service.
    /// </summary>
    protected ExecutionNotifier AddPortalStore()
    {
        _store = new SqliteTestDatabase();
        var connection = $"Data Source={_store.FilePath}";
        Services.AddDbContext<PortalDbContext, SqlitePortalDbContext>(o => o.UseSqlite(connection));
        using (var db = new SqlitePortalDbContext(new DbContextOptionsBuilder<SqlitePortalDbContext>().UseSqlite(connection).Options))
            db.Database.Migrate();
        // Made now (the test publishes through it before the provider is built); its feed reads the store through the provider later.
        var feed = new ExecutionFeed(new LaterScopes(Services), Microsoft.Extensions.Logging.Abstractions.NullLogger<ExecutionFeed>.Instance);
        var notifier = new ExecutionNotifier(feed);
        Services.AddSingleton(feed);
        Services.AddSingleton(notifier);
        Services.AddSingleton(TimeProvider.System);
        Services.AddLogging();
        Services.AddSingleton<AuditLog>();
        Services.AddSingleton(new ExecutionRunner([], TimeProvider.System, new ExecutionOptions()));
        Services.AddScoped<ApprovalService>();
        return notifier;
    }

    /// <summary>Scopes of the test's provider, once it is built.</summary>
    private sealed class LaterScopes(IServiceProvider services) : IServiceScopeFactory
    {
        public IServiceScope CreateScope() => services.GetRequiredService<IServiceScopeFactory>().CreateScope();
    }

    /// <summary>Runs <paramref name="work"/> on the test's database.</summary>
    protected async Task WithStoreAsync(Func<PortalDbContext, Task> work)
    {
        await using var scope = Services.GetRequiredService<IServiceScopeFactory>().CreateAsyncScope();
        await work(scope.ServiceProvider.GetRequiredService<PortalDbContext>());
    }

    protected void SignInAs(string email, params string[] roles)
    {
        var claims = new List<Claim> { new(ClaimTypes.Name, email), new(ClaimTypes.Email, email) };
        claims.AddRange(roles.Select(r => new Claim(ClaimTypes.Role, r)));
        var user = new ClaimsPrincipal(new ClaimsIdentity(claims, "test"));
        Services.AddSingleton<AuthenticationStateProvider>(new FixedAuthenticationStateProvider(user));
    }

    /// <summary>Renders <typeparamref name="T"/> inside the cascading authentication state, as the app does.</summary>
    protected IRenderedComponent<CascadingAuthenticationState> RenderWithAuth<T>(Action<ComponentParameterCollectionBuilder<T>>? parameters = null) where T : IComponent =>
        Render<CascadingAuthenticationState>(p => p.AddChildContent<T>(parameters ?? (_ => { })));

    private sealed class FixedAuthenticationStateProvider(ClaimsPrincipal user) : AuthenticationStateProvider
    {
        public override Task<AuthenticationState> GetAuthenticationStateAsync() => Task.FromResult(new AuthenticationState(user));
    }
}
