using Microsoft.AspNetCore.Identity;

namespace RunbookPortal.Web.Data;

public sealed class PortalUser : IdentityUser
{
    public DateTime CreatedAt { get; set; }

    /// <summary>A disabled user cannot sign in and none of their API tokens work.</summary>
    public bool IsDisabled { get; set; }
}

/// <summary>A personal API token. Only its SHA-256 hash is stored; the token itself is shown once.</summary>
public sealed class ApiToken
{
    public Guid Id { get; set; }
    public required string UserId { get; set; }
    public PortalUser? User { get; set; }
    public required string Name { get; set; }
    public required string TokenHash { get; set; }

    /// <summary>The first characters of the token, enough for a person to recognise it.</summary>
    public required string Prefix { get; set; }
    public DateTime CreatedAt { get; set; }
    public required string CreatedBy { get; set; }
    public DateTime? LastUsedAt { get; set; }
    public DateTime? RevokedAt { get; set; }
    public string? RevokedBy { get; set; }
}

/// <summary>One append-only, hash-chained audit record.</summary>
public sealed class AuditRecord
{
    public long Id { get; set; }
    public long Seq { get; set; }
    public DateTime At { get; set; }
    public required string Actor { get; set; }
    public required string Action { get; set; }
    public string? Target { get; set; }
    public string? Details { get; set; }
    public required string PreviousHash { get; set; }
    public required string Hash { get; set; }
}
