using Microsoft.EntityFrameworkCore;
using Microsoft.AspNetCore.Authorization;

namespace RunbookPortal.Web.Features.Account;

/// <summary>The five roles of the portal.</summary>
public static class Roles
{
    public const string Admin = "Admin";
    public const string Author = "Author";
    public const string Operator = "Operator";
    public const string Approver = "Approver";
    public const string Auditor = "Auditor";

    public static readonly IReadOnlyList<string> All = [Admin, Author, Operator, Approver, Auditor];

    public static string Describe(string role) => role switch
    {
        Admin => "Manages users, roles, API tokens and settings; may do everything.",
        Author => "Writes runbooks, submits and reviews versions.",
        Operator => "Starts runbooks and controls running executions.",
        Approver => "Signs off executions that need approval.",
        Auditor => "Reads the audit trail.",
        _ => "",
    };
}

/// <summary>Authorization policies used by pages and API alike. Admin satisfies every policy.</summary>
public static class Policies
{
    public const string Admin = "RequireAdmin";
    public const string Author = "RequireAuthor";
    public const string Operator = "RequireOperator";
    public const string Approver = "RequireApprover";
    public const string Auditor = "RequireAuditor";

    /// <summary>Any role at all: reading runbooks, executions and approvals. A signed-in person without a role reads nothing.</summary>
    public const string Reader = "RequireAnyRole";

    public static void Add(AuthorizationOptions options)
    {
        options.AddPolicy(Admin, p => p.RequireAuthenticatedUser().RequireRole(Roles.Admin));
        options.AddPolicy(Author, p => p.RequireAuthenticatedUser().RequireRole(Roles.Author, Roles.Admin));
        options.AddPolicy(Operator, p => p.RequireAuthenticatedUser().RequireRole(Roles.Operator, Roles.Admin));
        options.AddPolicy(Approver, p => p.RequireAuthenticatedUser().RequireRole(Roles.Approver, Roles.Admin));
        options.AddPolicy(Auditor, p => p.RequireAuthenticatedUser().RequireRole(Roles.Auditor, Roles.Admin));
        options.AddPolicy(Reader, p => p.RequireAuthenticatedUser().RequireRole(Roles.All));
        // Everything not marked otherwise needs a signed-in user.
        options.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
    }
}

/// <summary>The roles a person holds now, read from the store (not from a cookie that may be hours old).</summary>
public static class RoleLookup
{
    public static async Task<HashSet<string>> RolesOfAsync(this RunbookPortal.Web.Data.PortalDbContext db, string email, CancellationToken ct = default)
    {
        var normalized = email.ToUpperInvariant();
        var roles = await (from u in db.Users
                           where u.NormalizedEmail == normalized && !u.IsDisabled
                           join ur in db.UserRoles on u.Id equals ur.UserId
                           join r in db.Roles on ur.RoleId equals r.Id
                           select r.Name!).ToListAsync(ct);
        return new HashSet<string>(roles, StringComparer.Ordinal);
    }

    /// <summary>The e-mails of the enabled users holding <paramref name="role"/>.</summary>
    public static Task<List<string>> HoldersOfAsync(this RunbookPortal.Web.Data.PortalDbContext db, string role, CancellationToken ct = default) =>
        (from r in db.Roles
         where r.Name == role
         join ur in db.UserRoles on r.Id equals ur.RoleId
         join u in db.Users on ur.UserId equals u.Id
         where !u.IsDisabled
         orderby u.Email
         select u.Email!).ToListAsync(ct);
}
