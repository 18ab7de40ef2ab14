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

    public static void Add(AuthorizationOptions options)
    {
        options.AddPolicy(Admin, p => p.RequireAuthenticatedUser().RequireRole(Roles.Admin));
        options.AddPolicy(Author, p => p.RequireAuthenticatedUser().RequireRole(Roles.Author, Roles.Admin));
        options.AddPolicy(Operator, p => p.RequireAuthenticatedUser().RequireRole(Roles.Operator, Roles.Admin));
        options.AddPolicy(Approver, p => p.RequireAuthenticatedUser().RequireRole(Roles.Approver, Roles.Admin));
        options.AddPolicy(Auditor, p => p.RequireAuthenticatedUser().RequireRole(Roles.Auditor, Roles.Admin));
        // Everything not marked otherwise needs a signed-in user.
        options.FallbackPolicy = new AuthorizationPolicyBuilder().RequireAuthenticatedUser().Build();
    }
}
