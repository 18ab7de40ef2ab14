using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Admin;

public sealed record UserSummary(string Id, string Email, IReadOnlyList<string> Roles, bool IsDisabled, bool IsLockedOut, DateTime CreatedAt);

/// <summary>Users and their roles, for the admin pages and the admin API alike.</summary>
public sealed class UserAdminService(UserManager<PortalUser> users, RoleManager<IdentityRole> roles, PortalDbContext db, AuditLog audit, TimeProvider time)
{
    public Task<List<UserSummary>> ListAsync(CancellationToken ct = default) => SummariesAsync(db.Users, ct);

    public async Task<UserSummary?> FindAsync(string email, CancellationToken ct = default)
    {
        var normalized = users.NormalizeEmail(email);
        return (await SummariesAsync(db.Users.Where(u => u.NormalizedEmail == normalized), ct)).FirstOrDefault();
    }

    /// <summary>The users of <paramref name="source"/> with their role names, in two queries whatever their number.</summary>
    private async Task<List<UserSummary>> SummariesAsync(IQueryable<PortalUser> source, CancellationToken ct)
    {
        var found = await source.AsNoTracking().OrderBy(u => u.Email).ToListAsync(ct);
        var ids = found.Select(u => u.Id).ToList();
        var roleNames = await db.UserRoles.AsNoTracking().Where(ur => ids.Contains(ur.UserId))
            .Join(db.Roles, ur => ur.RoleId, r => r.Id, (ur, r) => new { ur.UserId, r.Name })
            .ToListAsync(ct);
        var byUser = roleNames.GroupBy(x => x.UserId).ToDictionary(g => g.Key, g => g.Select(x => x.Name!).OrderBy(r => r).ToList());
        var now = time.GetUtcNow();
        return found.Select(u => new UserSummary(
            u.Id, u.Email!, byUser.GetValueOrDefault(u.Id) ?? [], u.IsDisabled,
            u.LockoutEnd is { } end && end > now, u.CreatedAt)).ToList();
    }

    public async Task<OperationResult> CreateAsync(string actor, string? email, string? password, IEnumerable<string>? roleNames, CancellationToken ct = default)
    {
        var fields = new Dictionary<string, string[]>();
        email = email?.Trim();
        if (string.IsNullOrWhiteSpace(email) || !new System.ComponentModel.DataAnnotations.EmailAddressAttribute().IsValid(email))
            fields["email"] = ["Enter a valid email address."];
        if (string.IsNullOrEmpty(password))
            fields["password"] = ["Enter a password."];
        var wanted = NormalizeRoles(roleNames, fields);
        if (fields.Count > 0)
            return OperationResult.Invalid("The user cannot be created.", fields);

        if (await users.FindByEmailAsync(email!) is not null)
            return OperationResult.Conflict($"A user with the email '{email}' already exists.");

        var user = new PortalUser { UserName = email, Email = email, EmailConfirmed = true, CreatedAt = time.GetUtcNow().UtcDateTime };
        var created = await users.CreateAsync(user, password!);
        if (!created.Succeeded)
            return IdentityProblem(created, "password", "The user cannot be created.");

        await EnsureRolesExistAsync();
        if (wanted.Count > 0)
            await users.AddToRolesAsync(user, wanted);
        await audit.WriteAsync(actor, AuditActions.UserCreated, email, new { roles = wanted }, ct);
        return OperationResult.Ok;
    }

    public async Task<OperationResult> SetRolesAsync(string actor, string email, IEnumerable<string>? roleNames, CancellationToken ct = default)
    {
        var fields = new Dictionary<string, string[]>();
        var wanted = NormalizeRoles(roleNames, fields);
        if (fields.Count > 0)
            return OperationResult.Invalid("The roles cannot be set.", fields);
        var user = await users.FindByEmailAsync(email);
        if (user is null)
            return OperationResult.NotFound($"There is no user with the email '{email}'.");

        var current = await users.GetRolesAsync(user);
        if (current.Contains(Roles.Admin) && !wanted.Contains(Roles.Admin) && await IsLastActiveAdminAsync(user))
            return OperationResult.Conflict("This is the last enabled administrator; give another user the Admin role first.");

        await EnsureRolesExistAsync();
        var remove = current.Except(wanted).ToList();
        var add = wanted.Except(current).ToList();
        if (remove.Count > 0)
            await users.RemoveFromRolesAsync(user, remove);
        if (add.Count > 0)
            await users.AddToRolesAsync(user, add);
        if (remove.Count + add.Count > 0)
        {
            await users.UpdateSecurityStampAsync(user);
            await audit.WriteAsync(actor, AuditActions.UserRolesChanged, email, new { from = current.OrderBy(r => r), to = wanted }, ct);
        }
        return OperationResult.Ok;
    }

    public async Task<OperationResult> SetDisabledAsync(string actor, string email, bool disabled, CancellationToken ct = default)
    {
        var user = await users.FindByEmailAsync(email);
        if (user is null)
            return OperationResult.NotFound($"There is no user with the email '{email}'.");
        if (user.IsDisabled == disabled)
            return OperationResult.Ok;
        if (disabled && string.Equals(user.Email, actor, StringComparison.OrdinalIgnoreCase))
            return OperationResult.Conflict("You cannot disable your own account.");
        if (disabled && await users.IsInRoleAsync(user, Roles.Admin) && await IsLastActiveAdminAsync(user))
            return OperationResult.Conflict("This is the last enabled administrator and cannot be disabled.");

        user.IsDisabled = disabled;
        await users.UpdateAsync(user);
        await users.UpdateSecurityStampAsync(user);
        await audit.WriteAsync(actor, disabled ? AuditActions.UserDisabled : AuditActions.UserEnabled, email, null, ct);
        return OperationResult.Ok;
    }

    public async Task EnsureRolesExistAsync()
    {
        foreach (var role in Roles.All)
        {
            if (!await roles.RoleExistsAsync(role))
                await roles.CreateAsync(new IdentityRole(role));
        }
    }

    private async Task<bool> IsLastActiveAdminAsync(PortalUser user)
    {
        var admins = await users.GetUsersInRoleAsync(Roles.Admin);
        return !admins.Any(a => a.Id != user.Id && !a.IsDisabled);
    }

    private static List<string> NormalizeRoles(IEnumerable<string>? roleNames, Dictionary<string, string[]> fields)
    {
        var result = new List<string>();
        var unknown = new List<string>();
        foreach (var name in roleNames ?? [])
        {
            var match = Roles.All.FirstOrDefault(r => string.Equals(r, name?.Trim(), StringComparison.OrdinalIgnoreCase));
            if (match is null)
                unknown.Add(name ?? "");
            else if (!result.Contains(match))
                result.Add(match);
        }
        if (unknown.Count > 0)
            fields["roles"] = [$"Unknown role(s): {string.Join(", ", unknown)}. The roles are {string.Join(", ", Roles.All)}."];
        return result.OrderBy(r => r).ToList();
    }

    internal static OperationResult IdentityProblem(IdentityResult result, string field, string message) =>
        OperationResult.Invalid(message, new Dictionary<string, string[]> { [field] = result.Errors.Select(e => e.Description).ToArray() });
}
