using System.Security.Claims;
using Bunit;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Components;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.Extensions.DependencyInjection;
using MudBlazor;
using MudBlazor.Services;
using RunbookPortal.Web.Features.Account;

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

    Task IAsyncLifetime.InitializeAsync() => Task.CompletedTask;

    // MudBlazor services are only asynchronously disposable.
    async Task IAsyncLifetime.DisposeAsync() => await base.DisposeAsync();

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
