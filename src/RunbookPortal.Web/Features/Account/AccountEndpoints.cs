using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Audit;

namespace RunbookPortal.Web.Features.Account;

public static class AccountEndpoints
{
    public static IEndpointRouteBuilder MapAccountEndpoints(this IEndpointRouteBuilder app)
    {
        // A form post from the app bar (antiforgery-protected by the framework).
        app.MapPost("/account/logout", async (ClaimsPrincipal user, SignInManager<PortalUser> signIn, AuditLog audit) =>
            {
                if (user.Identity?.IsAuthenticated == true)
                {
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
