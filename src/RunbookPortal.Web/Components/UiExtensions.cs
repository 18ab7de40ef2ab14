using Microsoft.Extensions.FileProviders;
using MudBlazor;
using MudBlazor.Services;
using RunbookPortal.Web.Features.Account;

namespace RunbookPortal.Web.Components;

public static class UiExtensions
{
    public static WebApplicationBuilder AddPortalUi(this WebApplicationBuilder builder)
    {
        // Serve framework and MudBlazor assets from the build output too (not only from a publish folder),
        // whatever the environment: `dotnet RunbookPortal.Web.dll` straight from bin must look right.
        builder.WebHost.UseStaticWebAssets();
        builder.Services.AddRazorComponents().AddInteractiveServerComponents();
        builder.Services.AddMudServices(o =>
        {
            o.SnackbarConfiguration.PositionClass = Defaults.Classes.Position.BottomRight;
            o.SnackbarConfiguration.PreventDuplicates = false;
            o.SnackbarConfiguration.VisibleStateDuration = 6000;
        });
        builder.Services.AddHttpContextAccessor();
        return builder;
    }

    public static WebApplication UsePortalUi(this WebApplication app)
    {
        // wwwroot-assets/ of the repository, copied next to the app by the build, served at /assets.
        var assets = Path.Combine(AppContext.BaseDirectory, "wwwroot-assets");
        if (Directory.Exists(assets))
            app.UseStaticFiles(new StaticFileOptions { FileProvider = new PhysicalFileProvider(assets), RequestPath = "/assets" });
        app.UseCrossSiteRequestGuard();
        app.UseRateLimiter();
        app.UseAuthentication();
        app.UseAuthorization();
        app.UseAntiforgery();
        return app;
    }

    public static WebApplication MapPortalUi(this WebApplication app)
    {
        app.MapStaticAssets().AllowAnonymous();
        app.MapRazorComponents<App>().AddInteractiveServerRenderMode();
        return app;
    }
}
