using System.Security.Claims;
using Microsoft.AspNetCore.Identity;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;

namespace RunbookPortal.Web.Features.Admin;

public sealed record CreateUserRequest(string? Email, string? Password, string[]? Roles);
public sealed record SetRolesRequest(string[]? Roles);
public sealed record CreateTokenRequest(string? Name);
public sealed record CreatedTokenResponse(Guid Id, string Name, string Token);

public static class AdminEndpoints
{
    public static IEndpointRouteBuilder MapAdminApi(this IEndpointRouteBuilder app)
    {
        var admin = app.MapGroup("/api/admin").RequireAuthorization(Policies.Admin).WithTags("Admin");

        admin.MapGet("/users", async (UserAdminService svc, CancellationToken ct) => TypedResults.Ok(await svc.ListAsync(ct)))
            .WithSummary("All users with their roles and status.");

        admin.MapPost("/users", async (CreateUserRequest body, UserAdminService svc, ClaimsPrincipal me, CancellationToken ct) =>
            {
                var result = await svc.CreateAsync(me.ActorName(), body.Email, body.Password, body.Roles, ct);
                return result.Succeeded
                    ? Results.Created($"/api/admin/users/{Uri.EscapeDataString(body.Email!.Trim())}", await svc.FindAsync(body.Email!.Trim(), ct))
                    : result.ToProblem();
            })
            .WithSummary("Creates a user with a password and roles.");

        admin.MapGet("/users/{email}", async (string email, UserAdminService svc, CancellationToken ct) =>
                await svc.FindAsync(email, ct) is { } user ? Results.Ok(user) : TypedResults.Problem(statusCode: 404, title: "Not found.", detail: $"There is no user with the email '{email}'."))
            .WithSummary("One user.");

        admin.MapPut("/users/{email}/roles", async (string email, SetRolesRequest body, UserAdminService svc, ClaimsPrincipal me, CancellationToken ct) =>
            {
                var result = await svc.SetRolesAsync(me.ActorName(), email, body.Roles, ct);
                return result.Succeeded ? Results.Ok(await svc.FindAsync(email, ct)) : result.ToProblem();
            })
            .WithSummary("Replaces a user's roles.");

        admin.MapPost("/users/{email}/disable", (string email, UserAdminService svc, ClaimsPrincipal me, CancellationToken ct) => SetDisabled(email, true, svc, me, ct))
            .WithSummary("Disables a user: no sign-in, no API tokens.");
        admin.MapPost("/users/{email}/enable", (string email, UserAdminService svc, ClaimsPrincipal me, CancellationToken ct) => SetDisabled(email, false, svc, me, ct))
            .WithSummary("Enables a disabled user.");

        admin.MapPost("/users/{email}/tokens", async (string email, CreateTokenRequest body, UserManager<PortalUser> users, ApiTokenService tokens, ClaimsPrincipal me, CancellationToken ct) =>
            {
                var user = await users.FindByEmailAsync(email);
                if (user is null)
                    return TypedResults.Problem(statusCode: 404, title: "Not found.", detail: $"There is no user with the email '{email}'.");
                return await CreateToken(user, body, tokens, me, ct);
            })
            .WithSummary("Creates an API token for a user; the token is in this answer only.");

        admin.MapGet("/tokens", async (ApiTokenService tokens, CancellationToken ct) => TypedResults.Ok(await tokens.ListAsync(null, ct)))
            .WithSummary("Every API token (never the token itself).");

        admin.MapDelete("/tokens/{id:guid}", async (Guid id, ApiTokenService tokens, ClaimsPrincipal me, CancellationToken ct) =>
                await tokens.RevokeAsync(id, me.ActorName(), null, ct)
                    ? Results.NoContent()
                    : TypedResults.Problem(statusCode: 404, title: "Not found.", detail: "There is no such token."))
            .WithSummary("Revokes any API token.");

        // Tokens of the signed-in user.
        var mine = app.MapGroup("/api/tokens").RequireAuthorization().WithTags("Tokens");
        mine.MapGet("/", async (ApiTokenService tokens, UserManager<PortalUser> users, ClaimsPrincipal me, CancellationToken ct) =>
                TypedResults.Ok(await tokens.ListAsync(users.GetUserId(me), ct)))
            .WithSummary("Your API tokens.");
        mine.MapPost("/", async (CreateTokenRequest body, UserManager<PortalUser> users, ApiTokenService tokens, ClaimsPrincipal me, CancellationToken ct) =>
                await users.GetUserAsync(me) is { } user ? await CreateToken(user, body, tokens, me, ct) : Results.Unauthorized())
            .WithSummary("Creates an API token for yourself; the token is in this answer only.");
        mine.MapDelete("/{id:guid}", async (Guid id, ApiTokenService tokens, UserManager<PortalUser> users, ClaimsPrincipal me, CancellationToken ct) =>
                await tokens.RevokeAsync(id, me.ActorName(), users.GetUserId(me), ct)
                    ? Results.NoContent()
                    : TypedResults.Problem(statusCode: 404, title: "Not found.", detail: "You have no such token."))
            .WithSummary("Revokes one of your API tokens.");

        app.MapGet("/api/me", (ClaimsPrincipal me) => TypedResults.Ok(new
            {
                email = me.ActorName(),
                roles = me.FindAll(ClaimTypes.Role).Select(c => c.Value).Order().ToArray(),
            }))
            .RequireAuthorization().WithTags("Account").WithSummary("Who you are signed in as.");
        return app;
    }

    private static async Task<IResult> SetDisabled(string email, bool disabled, UserAdminService svc, ClaimsPrincipal me, CancellationToken ct)
    {
        var result = await svc.SetDisabledAsync(me.ActorName(), email, disabled, ct);
        return result.Succeeded ? Results.Ok(await svc.FindAsync(email, ct)) : result.ToProblem();
    }

    private static async Task<IResult> CreateToken(PortalUser user, CreateTokenRequest body, ApiTokenService tokens, ClaimsPrincipal me, CancellationToken ct)
    {
        if (ApiTokenService.ValidateName(body.Name) is { } error)
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["name"] = [error] }, title: "The request is not valid.");
        var created = await tokens.CreateAsync(user, body.Name!, me.ActorName(), null, ct);
        return TypedResults.Ok(new CreatedTokenResponse(created.Info.Id, created.Info.Name, created.Token));
    }
}
