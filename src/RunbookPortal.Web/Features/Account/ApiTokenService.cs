using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Audit;

namespace RunbookPortal.Web.Features.Account;

public sealed record ApiTokenInfo(Guid Id, string Name, string Prefix, string OwnerEmail, DateTime CreatedAt, string CreatedBy, DateTime? LastUsedAt, DateTime? RevokedAt)
{
    public bool IsRevoked => RevokedAt is not null;
}

public sealed record CreatedApiToken(ApiTokenInfo Info, string Token);

/// <summary>Personal API tokens: created (shown once), stored only as a SHA-256 hash, revoked, looked up.</summary>
public sealed class ApiTokenService(PortalDbContext db, AuditLog audit, TimeProvider time)
{
    public const string TokenPrefix = "rbp_";
    public const int MinimumBootstrapTokenLength = 32;
    private static readonly TimeSpan LastUsedResolution = TimeSpan.FromSeconds(30);

    public static string Hash(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    /// <summary>
    /// A new token, <c>rbp_&lt;public id&gt;.&lt;secret&gt;</c>, and its public id (<c>rbp_&lt;8 characters&gt;</c>), which lists
    /// show to tell tokens apart: the id is random on its own, so showing it tells nothing of the 256-bit secret.
    /// </summary>
    public static (string Token, string PublicId) NewToken()
    {
        var publicId = TokenPrefix + WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(6));
        return (publicId + "." + WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(32)), publicId);
    }

    /// <summary>What lists show of a token set by configuration (Bootstrap:ApiToken): nothing of the token itself.</summary>
    public const string GivenTokenId = "bootstrap";

    public static string? ValidateName(string? name) =>
        string.IsNullOrWhiteSpace(name) ? "Give the token a name, for example the pipeline that will use it."
        : name.Trim().Length > 100 ? "A token name has at most 100 characters."
        : null;

    /// <summary>Creates a token for <paramref name="owner"/>; <paramref name="token"/> is given only for the bootstrap token.</summary>
    public async Task<CreatedApiToken> CreateAsync(PortalUser owner, string name, string actor, string? token = null, CancellationToken ct = default)
    {
        string publicId;
        if (token is null)
            (token, publicId) = NewToken();
        else
            publicId = GivenTokenId;
        var entity = new ApiToken
        {
            Id = Guid.NewGuid(),
            UserId = owner.Id,
            Name = name.Trim(),
            TokenHash = Hash(token),
            Prefix = publicId,
            CreatedAt = time.GetUtcNow().UtcDateTime,
            CreatedBy = actor,
        };
        db.ApiTokens.Add(entity);
        await db.SaveChangesAsync(ct);
        await audit.WriteAsync(actor, AuditActions.TokenCreated, owner.Email, new { tokenId = entity.Id, name = entity.Name, prefix = entity.Prefix }, ct);
        return new CreatedApiToken(ToInfo(entity, owner.Email!), token);
    }

    /// <summary>The enabled user a live token belongs to, or null. Records when it was last used.</summary>
    public async Task<PortalUser?> AuthenticateAsync(string token, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(token) || token.Length > 512)
            return null;
        var hash = Hash(token);
        var found = await db.ApiTokens.Include(t => t.User)
            .Where(t => t.TokenHash == hash && t.RevokedAt == null)
            .FirstOrDefaultAsync(ct);
        if (found?.User is null || found.User.IsDisabled)
            return null;

        var now = time.GetUtcNow().UtcDateTime;
        if (found.LastUsedAt is null || now - found.LastUsedAt > LastUsedResolution)
        {
            await db.ApiTokens.Where(t => t.Id == found.Id).ExecuteUpdateAsync(s => s.SetProperty(t => t.LastUsedAt, now), ct);
        }
        return found.User;
    }

    public async Task<List<ApiTokenInfo>> ListAsync(string? userId = null, CancellationToken ct = default)
    {
        var tokens = db.ApiTokens.AsNoTracking().Include(t => t.User).AsQueryable();
        if (userId is not null)
            tokens = tokens.Where(t => t.UserId == userId);
        var list = await tokens.ToListAsync(ct);
        return list.OrderByDescending(t => t.CreatedAt).Select(t => ToInfo(t, t.User?.Email ?? "")).ToList();
    }

    /// <summary>Revokes a token; with <paramref name="ownerId"/> only if it belongs to that user. False when not found.</summary>
    public async Task<bool> RevokeAsync(Guid id, string actor, string? ownerId = null, CancellationToken ct = default)
    {
        var token = await db.ApiTokens.Include(t => t.User).FirstOrDefaultAsync(t => t.Id == id, ct);
        if (token is null || (ownerId is not null && token.UserId != ownerId))
            return false;
        if (token.RevokedAt is not null)
            return true;
        token.RevokedAt = time.GetUtcNow().UtcDateTime;
        token.RevokedBy = actor;
        await db.SaveChangesAsync(ct);
        await audit.WriteAsync(actor, AuditActions.TokenRevoked, token.User?.Email, new { tokenId = token.Id, name = token.Name, prefix = token.Prefix }, ct);
        return true;
    }

    private static ApiTokenInfo ToInfo(ApiToken t, string ownerEmail) =>
        new(t.Id, t.Name, t.Prefix, ownerEmail, t.CreatedAt, t.CreatedBy, t.LastUsedAt, t.RevokedAt);
}
