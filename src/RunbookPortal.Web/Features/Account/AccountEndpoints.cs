using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Audit;

namespace RunbookPortal.Web.Features.Account;

public static class AccountEndpoints
{
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        // A form post from the app bar; a post from another site's page is refused (CrossSiteRequestGuard).
        // Signing out renews the security stamp: every cookie of this person ends with it, a copied one too.
        app.MapPost("/account/logout", async (ClaimsPrincipal user, SignInManager<PortalUser> signIn, UserManager<PortalUser> users, AuditLog audit) =>
            {
                if (user.Identity?.IsAuthenticated == true)
                {
                    if (await users.GetUserAsync(user) is { } person)
                        await users.UpdateSecurityStampAsync(person);
                    await signIn.SignOutAsync();
                    await audit.WriteAsync(user.ActorName(), AuditActions.SignOut);
                }
                return TypedResults.LocalRedirect("~/account/login?signedOut=1");
            })
            .AllowAnonymous()
            .ExcludeFromDescription();
        return app;
    }
}
