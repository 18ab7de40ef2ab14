using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Auditing;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Audit;

/// <summary>Well-known audit actions.</summary>
public static class AuditActions
{
    public const string SignIn = "auth.signin";
    public const string SignInFailed = "auth.signin-failed";
    public const string Lockout = "auth.lockout";
    public const string SignOut = "auth.signout";
    public const string FirstAdminCreated = "setup.first-admin";
    public const string UserCreated = "user.created";
    public const string UserRolesChanged = "user.roles-changed";
    public const string UserDisabled = "user.disabled";
    public const string UserEnabled = "user.enabled";
    public const string TokenCreated = "token.created";
    public const string TokenRevoked = "token.revoked";
}

public sealed record AuditQuery(long? After = null, string? Actor = null, string? Action = null, DateTime? From = null, DateTime? To = null);

/// <summary>
/// Appends hash-chained audit records and reads them back. Appends are serialised: in this process by a
/// lock, across PostgreSQL nodes by an advisory transaction lock, and the unique Seq index refuses a fork.
/// <see cref="WriteAsync"/> uses a DbContext of its own so a caller's unsaved changes are never swept along;
/// <see cref="SaveWithAsync"/> saves them on purpose, with the record, in one transaction.
/// </summary>
public sealed class AuditLog(IServiceScopeFactory scopes, TimeProvider time, ILogger<AuditLog> logger)
{
    private static readonly SemaphoreSlim AppendGate = new(1, 1);
    private const long PostgresAuditLockKey = 0x52425041_55444954; // "RBPAUDIT"

    public async Task WriteAsync(string actor, string action, string? target = null, object? details = null, CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        await SaveWithAsync(scope.ServiceProvider.GetRequiredService<PortalDbContext>(), actor, action, target, details, ct);
    }

    /// <summary>
    /// Saves <paramref name="db"/>'s pending changes and the audit record of them in one transaction: both are
    /// committed or neither is, so an action is never done without its record, nor answered as failed once it is
    /// done. Throws what saving threw (a <see cref="DbUpdateException"/> for a unique index, say), with nothing saved
    /// and the audit record no longer tracked; the caller's own changes stay tracked for it to deal with.
    /// </summary>
    public async Task SaveWithAsync(PortalDbContext db, string actor, string action, string? target = null, object? details = null, CancellationToken ct = default)
    {
        if (db.Database.CurrentTransaction is not null)
            throw new InvalidOperationException("The audit record brings its own transaction; save the changes without one.");
        var detailsJson = details is null ? null : details as string ?? JsonSerializer.Serialize(details, JsonOptions);
        await AppendGate.WaitAsync(ct);
        AuditRecord? record = null;
        try
        {
            await using var tx = await db.Database.BeginTransactionAsync(ct);
            if (db.Database.IsNpgsql())
                await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({PostgresAuditLockKey})", ct);

            var last = await db.AuditRecords.AsNoTracking().OrderByDescending(r => r.Seq)
                .Select(r => new { r.Seq, r.Hash }).FirstOrDefaultAsync(ct);
            var facts = new AuditFacts(
                Seq: (last?.Seq ?? 0) + 1,
                At: AuditChain.Normalize(time.GetUtcNow().UtcDateTime),
                Actor: Truncate(actor, 256),
                Action: Truncate(action, 100),
                Target: target is null ? null : Truncate(target, 512),
                Details: detailsJson,
                PreviousHash: last?.Hash ?? AuditChain.GenesisHash);

            record = new AuditRecord
            {
                Seq = facts.Seq,
                At = facts.At,
                Actor = facts.Actor,
                Action = facts.Action,
                Target = facts.Target,
                Details = facts.Details,
                PreviousHash = facts.PreviousHash,
                Hash = AuditChain.ComputeHash(facts),
            };
            db.AuditRecords.Add(record);
            await db.SaveChangesAsync(ct);
            await tx.CommitAsync(ct);
            logger.LogInformation("Audit {Seq}: {Actor} {Action} {Target}", facts.Seq, facts.Actor, facts.Action, facts.Target);
        }
        catch
        {
            if (record is not null)
                db.Entry(record).State = EntityState.Detached;
            throw;
        }
        finally
        {
            AppendGate.Release();
        }
    }

    public async Task<List<AuditRecord>> QueryAsync(AuditQuery query, int limit, int offset = 0, CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        return await Filter(db, query).OrderBy(r => r.Seq).Skip(offset).Take(limit).ToListAsync(ct);
    }

    /// <summary>Newest first, for the page.</summary>
    public async Task<(List<AuditRecord> Items, int Total)> PageAsync(AuditQuery query, int page, int pageSize, CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var filtered = Filter(db, query);
        var total = await filtered.CountAsync(ct);
        var items = await filtered.OrderByDescending(r => r.Seq).Skip(page * pageSize).Take(pageSize).ToListAsync(ct);
        return (items, total);
    }

    public async IAsyncEnumerable<AuditRecord> StreamAsync(AuditQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        await foreach (var r in Filter(db, query).OrderBy(r => r.Seq).AsAsyncEnumerable().WithCancellation(ct))
            yield return r;
    }

    /// <summary>Walks the whole chain in batches and names the first record that does not fit.</summary>
    public async Task<AuditVerification> VerifyAsync(CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var verifier = new AuditChainVerifier();
        long after = 0;
        while (true)
        {
            var batch = await db.AuditRecords.AsNoTracking().Where(r => r.Seq > after).OrderBy(r => r.Seq).Take(1000).ToListAsync(ct);
            if (batch.Count == 0)
                return verifier.Result;
            foreach (var r in batch)
            {
                if (!verifier.Add(new AuditFacts(r.Seq, r.At, r.Actor, r.Action, r.Target, r.Details, r.PreviousHash), r.Hash))
                    return verifier.Result;
            }
            after = batch[^1].Seq;
        }
    }

    public async Task<IReadOnlyList<string>> KnownActionsAsync(CancellationToken ct = default)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        return await db.AuditRecords.Select(r => r.Action).Distinct().OrderBy(a => a).ToListAsync(ct);
    }

    private static IQueryable<AuditRecord> Filter(PortalDbContext db, AuditQuery q)
    {
        var records = db.AuditRecords.AsNoTracking();
        if (q.After is { } after)
            records = records.Where(r => r.Seq > after);
        if (!string.IsNullOrWhiteSpace(q.Actor))
        {
            var actor = q.Actor.Trim().ToLower();
            records = records.Where(r => r.Actor.ToLower().Contains(actor));
        }
        if (!string.IsNullOrWhiteSpace(q.Action))
        {
            var action = q.Action.Trim();
            records = action.EndsWith('*')
                ? records.Where(r => r.Action.StartsWith(action.TrimEnd('*')))
                : records.Where(r => r.Action == action);
        }
        if (q.From is { } from)
        {
            var f = AuditChain.Normalize(from);
            records = records.Where(r => r.At >= f);
        }
        if (q.To is { } to)
        {
            var t = AuditChain.Normalize(to);
            records = records.Where(r => r.At <= t);
        }
        return records;
    }

    private static string Truncate(string value, int max) => value.Length <= max ? value : value[..max];

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web);
}
