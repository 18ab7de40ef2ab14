using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Admin;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Account;

/// <summary>Section "Bootstrap": the first administrator, created at start when the portal has no users.</summary>
public sealed class BootstrapOptions
{
    public string? AdminEmail { get; set; }
    public string? AdminPassword { get; set; }
    public string? ApiToken { get; set; }
}

/// <summary>
/// The first administrator: from configuration at start-up, or from the one-time setup page.
/// Both paths take the same lock and re-check that no user exists, so there is only ever one "first".
/// </summary>
public sealed class FirstRunService(PortalDbContext db, UserManager<PortalUser> users, UserAdminService admin, ApiTokenService tokens, AuditLog audit)
{
    private static readonly SemaphoreSlim Gate = new(1, 1);
    public const string SystemActor = "system";

    public async Task<bool> IsSetupNeededAsync(CancellationToken ct = default) => !await db.Users.AnyAsync(ct);

    /// <summary>Applies Bootstrap:* when the portal has no users; throws <see cref="StartupException"/> for bad settings.</summary>
    public async Task ApplyBootstrapAsync(BootstrapOptions options, CancellationToken ct = default)
    {
        await admin.EnsureRolesExistAsync();
        var hasEmail = !string.IsNullOrWhiteSpace(options.AdminEmail);
        var hasPassword = !string.IsNullOrEmpty(options.AdminPassword);
        if (hasEmail != hasPassword)
            throw new StartupException("Set both Bootstrap:AdminEmail and Bootstrap:AdminPassword to create the first administrator, or neither to use the setup page.");
        if (!string.IsNullOrEmpty(options.ApiToken) && options.ApiToken.Length < ApiTokenService.MinimumBootstrapTokenLength)
            throw new StartupException($"Bootstrap:ApiToken must be at least {ApiTokenService.MinimumBootstrapTokenLength} characters long.");
        if (!string.IsNullOrEmpty(options.ApiToken) && !hasEmail)
            throw new StartupException("Bootstrap:ApiToken needs Bootstrap:AdminEmail and Bootstrap:AdminPassword: the token belongs to that administrator.");
        if (!hasEmail)
            return;

        var result = await CreateFirstAdminAsync(options.AdminEmail!, options.AdminPassword!, SystemActor, options.ApiToken, ct);
        if (result.Error is OperationError.Invalid)
            throw new StartupException($"Bootstrap:AdminEmail/AdminPassword cannot create the first administrator: {result.Describe()}");
    }

    /// <summary>Creates the first administrator if there is still no user; Conflict otherwise.</summary>
    public async Task<OperationResult> CreateFirstAdminAsync(string email, string password, string actor, string? apiToken = null, CancellationToken ct = default)
    {
        await Gate.WaitAsync(ct);
        try
        {
            if (await db.Users.AnyAsync(ct))
                return OperationResult.Conflict("The portal already has users; sign in instead.");
            var created = await admin.CreateAsync(actor == SystemActor ? SystemActor : email.Trim(), email, password, [Roles.Admin], ct);
            if (!created.Succeeded)
                return created;
            var user = (await users.FindByEmailAsync(email.Trim()))!;
            await audit.WriteAsync(actor == SystemActor ? SystemActor : user.Email!, AuditActions.FirstAdminCreated, user.Email, new { via = actor == SystemActor ? "configuration" : "setup page" }, ct);
            if (!string.IsNullOrEmpty(apiToken))
                await tokens.CreateAsync(user, "bootstrap", SystemActor, apiToken, ct);
            return OperationResult.Ok;
        }
        finally
        {
            Gate.Release();
        }
    }
}
