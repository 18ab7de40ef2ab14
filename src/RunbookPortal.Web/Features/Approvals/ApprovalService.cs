using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Approvals;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Approvals;

public sealed record DecisionRequest(string? Comment);

public sealed record ApprovalDecisionView(string By, DateTime At, string? Comment);

/// <summary>One approval request as the API and the queue show it (secret parameters masked).</summary>
public sealed record ApprovalView(
    Guid Id,
    Guid ExecutionId,
    string Runbook,
    int Version,
    string RequestedBy,
    DateTime RequestedAt,
    string? RequestComment,
    int RequiredApprovals,
    string ApproverRole,
    IReadOnlyList<ApprovalDecisionView> Approvals,
    ApprovalDecisionView? Rejection,
    DateTime? ExpiresAt,
    ApprovalStatus Status,
    DateTime? DecidedAt,
    IReadOnlyDictionary<string, string> Conditions,
    IReadOnlyDictionary<string, string> Parameters)
{
    /// <summary>The policy as a person reads it: "environment=production: 2 approvals from Approver".</summary>
    public string Why => (Conditions.Count == 0 ? "every run" : string.Join(", ", Conditions.Select(c => $"{c.Key}={c.Value}")))
        + $": {RequiredApprovals} approval{(RequiredApprovals == 1 ? "" : "s")} from {ApproverRole}";
}

/// <summary>What an approver needs to decide: the request, what changed since the last good run, and what each step will do.</summary>
public sealed record ApprovalDetail(
    ApprovalView Request,
    string Yaml,
    int? BaseVersion,
    string? BaseYaml,
    IReadOnlyList<StepPreview> Steps,
    IReadOnlyList<string> Prerequisites,
    string Title,
    IReadOnlyList<string> MayDecide);

public enum ApprovalScope
{
    /// <summary>Every request.</summary>
    All,

    /// <summary>Pending requests this person may decide (holds the role, did not request it, has not decided).</summary>
    Mine,

    /// <summary>Requests this person made.</summary>
    Requested,
}

/// <summary>
/// The approval gate, for the pages and the API alike. Rules, all here: only holders of the request's approver role
/// decide (an Admin only if they hold that role too); the requester never decides; each person decides once, so
/// approving twice counts once; a rejection needs a comment; the run is queued at the quorum, Rejected at any
/// rejection, Expired when its time runs out. Every change is a conditional update (the request's revision and the
/// execution's seq are concurrency tokens), so two approvers at the same instant give exactly one transition.
/// </summary>
public sealed class ApprovalService(PortalDbContext db, AuditLog audit, TimeProvider time, ExecutionNotifier notifier, ExecutionRunner runner)
{
    public const int MaxComment = 2000;

    /// <summary>The execution events that change what the approval queue shows.</summary>
    public static bool Concerns(string eventKind) => eventKind is EventKinds.ExecutionAwaitingApproval or EventKinds.ExecutionApprovalRecorded or EventKinds.ExecutionApproved
        or EventKinds.ExecutionRejected or EventKinds.ExecutionExpired or EventKinds.ExecutionCancelled;

    /// <summary>A new request for <paramref name="execution"/> (tracked, saved by the caller with the execution).</summary>
    internal static ApprovalRequest Open(PortalDbContext db, Execution execution, ApprovalPolicy policy, string? comment, DateTime now)
    {
        var request = new ApprovalRequest
        {
            Id = Guid.NewGuid(),
            ExecutionId = execution.Id,
            RunbookVersionId = execution.RunbookVersionId,
            RunbookName = execution.RunbookName,
            Version = execution.Version,
            RequestedBy = execution.RequestedBy,
            RequestedAt = now,
            RequestComment = comment,
            RequiredApprovals = policy.RequiredApprovals,
            ApproverRole = policy.ApproverRole,
            ConditionsJson = JsonSerializer.Serialize(policy.When, ExecutionLedger.Json),
            ParametersHash = ApprovalGate.ParametersHash(execution.ParametersJson, execution.ProtectedSecrets),
            ExpiresAt = policy.ExpiresAfter is { } after ? now + after : null,
            Status = ApprovalStatus.Pending,
        };
        execution.ApprovalRequestId = request.Id;
        db.ApprovalRequests.Add(request);
        return request;
    }

    /// <summary>
    /// True when <paramref name="execution"/> passed its gate: the one check the worker, resume and rollback share. A run
    /// with an approval passed when that approval is granted, for this run, its version and its values unchanged. A run
    /// without one passed only when its version's policy does not apply to its values (<paramref name="definition"/>,
    /// null when the version no longer validates): a run from before approvals were recorded, or any row that lost
    /// its link, cannot slip through.
    /// </summary>
    internal static bool Passed(Execution execution, ApprovalRequest? request, RunbookDefinition? definition)
    {
        if (execution.ApprovalRequestId is null)
        {
            var values = JsonSerializer.Deserialize<Dictionary<string, string>>(execution.ParametersJson, ExecutionLedger.Json) ?? [];
            return definition is not null && ApprovalGate.For(definition, values, execution.DryRun) is null;
        }
        return request is { Status: ApprovalStatus.Approved } r && r.Id == execution.ApprovalRequestId && r.ExecutionId == execution.Id
               && r.RunbookVersionId == execution.RunbookVersionId
               && r.ParametersHash == ApprovalGate.ParametersHash(execution.ParametersJson, execution.ProtectedSecrets);
    }

    /// <summary>Ends a request because its run was cancelled before it ran (final: the run can never be resumed).</summary>
    internal static void CloseCancelled(ApprovalRequest request, DateTime now)
    {
        if (request.Status is not (ApprovalStatus.Pending or ApprovalStatus.Approved))
            return;
        request.Status = ApprovalStatus.Cancelled;
        request.DecidedAt = now;
        request.Revision++;
    }

    /// <summary>Ends a pending request whose time ran out and its run with it; answers the event to publish.</summary>
    internal static ExecutionEventRecord? ExpireInto(PortalDbContext db, ApprovalRequest request, Execution? execution, DateTime now)
    {
        request.Status = ApprovalStatus.Expired;
        request.DecidedAt = now;
        request.Revision++;
        if (execution is not { Status: ExecutionStatus.AwaitingApproval })
            return null;
        var approvals = request.Decisions.Count(d => d.Approved);
        return ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionExpired, null, new
        {
            reason = $"Not approved in time: {approvals} of {request.RequiredApprovals} approvals by {request.ExpiresAt:yyyy-MM-dd HH:mm} UTC.",
            approvals,
            requiredApprovals = request.RequiredApprovals,
        }), now);
    }

    internal static Task AuditExpiredAsync(AuditLog audit, ApprovalRequest request, CancellationToken ct) =>
        audit.WriteAsync("portal", "execution.approval-expired", $"{request.RunbookName} v{request.Version}",
            new { approvalId = request.Id, executionId = request.ExecutionId, approvals = request.Decisions.Count(d => d.Approved), requiredApprovals = request.RequiredApprovals }, ct);

    public Task<OperationResult> ApproveAsync(string actor, Guid id, string? comment, CancellationToken ct = default) => DecideAsync(actor, id, true, comment, ct);

    public Task<OperationResult> RejectAsync(string actor, Guid id, string? comment, CancellationToken ct = default) => DecideAsync(actor, id, false, comment, ct);

    private async Task<OperationResult> DecideAsync(string actor, Guid id, bool approve, string? comment, CancellationToken ct)
    {
        comment = string.IsNullOrWhiteSpace(comment) ? null : comment.Trim();
        if (comment is { Length: > MaxComment })
            return OperationResult.Invalid($"A comment has at most {MaxComment} characters.");
        if (!approve && comment is null)
            return OperationResult.Invalid("Say why you reject this run: a comment is required.");
        var roles = await db.RolesOfAsync(actor, ct);

        for (var attempt = 1; ; attempt++)
        {
            var request = await db.ApprovalRequests.Include(a => a.Decisions).FirstOrDefaultAsync(a => a.Id == id, ct);
            if (request is null)
                return OperationResult.NotFound("There is no such approval request.");
            if (string.Equals(request.RequestedBy, actor, StringComparison.OrdinalIgnoreCase))
                return OperationResult.Forbidden($"You requested this run, so you cannot approve or reject it; another person with the {request.ApproverRole} role must.");
            if (!roles.Contains(request.ApproverRole))
            {
                var admin = roles.Contains(Roles.Admin) ? " An Admin counts as an approver only when they hold that role too." : "";
                return OperationResult.Forbidden($"Only people with the {request.ApproverRole} role can approve or reject this run.{admin}");
            }
            var mine = request.Decisions.FirstOrDefault(d => string.Equals(d.By, actor, StringComparison.OrdinalIgnoreCase));
            if (mine is { Approved: true } && approve)
                return OperationResult.Ok; // approving twice counts once
            if (mine is not null)
                return OperationResult.Conflict($"You already {(mine.Approved ? "approved" : "rejected")} this run; a decision cannot be changed. Cancel the run instead if it must not go ahead.");
            if (request.Status != ApprovalStatus.Pending)
                return OperationResult.Conflict($"This request is already {request.Status.ToString().ToLowerInvariant()}; there is nothing left to decide.");

            var now = time.GetUtcNow().UtcDateTime;
            var execution = await db.Executions.FirstOrDefaultAsync(e => e.Id == request.ExecutionId, ct);
            var events = new List<ExecutionEventRecord>();
            if (request.ExpiresAt is { } expires && expires <= now)
            {
                if (ExpireInto(db, request, execution, now) is { } expired)
                    events.Add(expired);
                if (await TrySaveAsync(attempt, ct))
                {
                    Publish(events);
                    await AuditExpiredAsync(audit, request, ct);
                    return OperationResult.Conflict("This request expired before your decision arrived; the run will not go ahead. Start it again to ask anew.");
                }
                continue;
            }
            if (execution is not { Status: ExecutionStatus.AwaitingApproval })
                return OperationResult.Conflict($"The run is {execution?.Status.ToString() ?? "gone"}; it no longer waits for approval.");

            request.Decisions.Add(new ApprovalDecision { ApprovalRequestId = request.Id, By = actor, At = now, Approved = approve, Comment = comment });
            request.Revision++;
            var approvals = request.Decisions.Count(d => d.Approved);
            var queued = false;
            if (!approve)
            {
                request.Status = ApprovalStatus.Rejected;
                request.DecidedAt = now;
                events.Add(ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionRejected, null,
                    new { by = actor, comment, reason = $"Rejected by {actor}: {comment}" }), now));
            }
            else if (approvals >= request.RequiredApprovals)
            {
                request.Status = ApprovalStatus.Approved;
                request.DecidedAt = now;
                events.Add(ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionApproved, null,
                    new { by = actor, comment, approvals, requiredApprovals = request.RequiredApprovals, approvers = request.Decisions.Where(d => d.Approved).Select(d => d.By) }), now));
                events.Add(ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = actor, approved = true }), now));
                queued = true;
            }
            else
            {
                events.Add(ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionApprovalRecorded, null,
                    new { by = actor, comment, approvals, requiredApprovals = request.RequiredApprovals }), now));
            }
            if (!await TrySaveAsync(attempt, ct))
                continue;
            Publish(events);
            if (queued)
                notifier.WorkQueued();
            await audit.WriteAsync(actor, approve ? "execution.approved" : "execution.rejected", $"{request.RunbookName} v{request.Version}",
                new { approvalId = request.Id, executionId = request.ExecutionId, comment, approvals, requiredApprovals = request.RequiredApprovals, queued }, ct);
            return OperationResult.Ok;
        }
    }

    /// <summary>Saves; on a conflict (another decision, a cancel, the sweep) forgets what it read so the caller reads again.</summary>
    private async Task<bool> TrySaveAsync(int attempt, CancellationToken ct)
    {
        try
        {
            await db.SaveChangesAsync(ct);
            return true;
        }
        catch (DbUpdateException) when (attempt < 20)
        {
            db.ChangeTracker.Clear();
            return false;
        }
    }

    private void Publish(IEnumerable<ExecutionEventRecord> events)
    {
        foreach (var e in events)
            notifier.Publish(e);
    }

    /// <summary>Requests by status (null: all), newest first; <paramref name="scope"/> narrows them to one person's.</summary>
    public async Task<List<ApprovalView>> ListAsync(string actor, ApprovalStatus? status, ApprovalScope scope = ApprovalScope.All, int take = 200, CancellationToken ct = default)
    {
        var query = db.ApprovalRequests.AsNoTracking().Include(a => a.Decisions).AsQueryable();
        if (status is { } s)
            query = query.Where(a => a.Status == s);
        if (scope == ApprovalScope.Requested)
            query = query.Where(a => a.RequestedBy == actor);
        if (scope == ApprovalScope.Mine)
            query = WaitingFor(query, actor, (await db.RolesOfAsync(actor, ct)).ToList());
        var rows = await query.OrderByDescending(a => a.RequestedAt).Take(Math.Clamp(take, 1, 500)).ToListAsync(ct);
        var ids = rows.Select(r => r.ExecutionId).ToList();
        var parameters = await db.Executions.AsNoTracking().Where(e => ids.Contains(e.Id)).Select(e => new { e.Id, e.ParametersJson }).ToDictionaryAsync(e => e.Id, e => e.ParametersJson, ct);
        return rows.Select(r => ToView(r, parameters.GetValueOrDefault(r.ExecutionId))).ToList();
    }

    /// <summary>How many requests wait for this person's decision (the navigation badge).</summary>
    public async Task<int> CountMineAsync(string actor, CancellationToken ct = default)
    {
        var roles = (await db.RolesOfAsync(actor, ct)).ToList();
        return roles.Count == 0 ? 0 : await WaitingFor(db.ApprovalRequests, actor, roles).CountAsync(ct);
    }

    /// <summary>The pending requests <paramref name="actor"/> may decide: they hold the role, did not request it, have not decided.</summary>
    private static IQueryable<ApprovalRequest> WaitingFor(IQueryable<ApprovalRequest> requests, string actor, List<string> roles) =>
        requests.Where(a => a.Status == ApprovalStatus.Pending && roles.Contains(a.ApproverRole) && a.RequestedBy != actor && !a.Decisions.Any(d => d.By == actor));

    /// <summary>Who may decide on <paramref name="request"/>: the enabled holders of its role, but not its requester.</summary>
    public async Task<List<string>> MayDecideAsync(ApprovalView request, CancellationToken ct = default) =>
        (await db.HoldersOfAsync(request.ApproverRole, ct)).Where(e => !string.Equals(e, request.RequestedBy, StringComparison.OrdinalIgnoreCase)).ToList();

    public async Task<ApprovalView?> GetAsync(Guid id, CancellationToken ct = default)
    {
        var row = await db.ApprovalRequests.AsNoTracking().Include(a => a.Decisions).FirstOrDefaultAsync(a => a.Id == id, ct);
        if (row is null)
            return null;
        var parameters = await db.Executions.AsNoTracking().Where(e => e.Id == row.ExecutionId).Select(e => e.ParametersJson).FirstOrDefaultAsync(ct);
        return ToView(row, parameters);
    }

    public async Task<ApprovalView?> ForExecutionAsync(Guid executionId, CancellationToken ct = default)
    {
        var id = await db.ApprovalRequests.AsNoTracking().Where(a => a.ExecutionId == executionId).Select(a => (Guid?)a.Id).FirstOrDefaultAsync(ct);
        return id is { } found ? await GetAsync(found, ct) : null;
    }

    /// <summary>
    /// The request with what an approver needs: the YAML of this version and of the version last run successfully with
    /// the same <c>when</c> values (the diff base), what each step will do with these values (secrets masked), the
    /// prerequisites, and who may decide.
    /// </summary>
    public async Task<ApprovalDetail?> DetailAsync(Guid id, CancellationToken ct = default)
    {
        var request = await GetAsync(id, ct);
        if (request is null)
            return null;
        var versionId = await db.ApprovalRequests.AsNoTracking().Where(a => a.Id == id).Select(a => a.RunbookVersionId).FirstAsync(ct);
        var yaml = await db.RunbookVersions.AsNoTracking().Where(v => v.Id == versionId).Select(v => v.Yaml).FirstOrDefaultAsync(ct);
        if (yaml is null)
            return null;
        var definition = RunbookValidator.Validate(yaml).Definition;

        // The last successful real run of this runbook whose values match this request's conditions.
        var candidates = await db.Executions.AsNoTracking()
            .Where(e => e.RunbookName == request.Runbook && e.Status == ExecutionStatus.Succeeded && !e.DryRun && e.Id != request.ExecutionId)
            .OrderByDescending(e => e.FinishedAt).Take(200).Select(e => new { e.Version, e.ParametersJson }).ToListAsync(ct);
        var match = candidates.FirstOrDefault(c =>
        {
            var values = JsonSerializer.Deserialize<Dictionary<string, string>>(c.ParametersJson, ExecutionLedger.Json) ?? [];
            return request.Conditions.All(w => values.TryGetValue(w.Key, out var v) && v == w.Value);
        });
        string? baseYaml = null;
        if (match is not null)
            baseYaml = await db.RunbookVersions.AsNoTracking().Where(v => v.Runbook!.Name == request.Runbook && v.Version == match.Version).Select(v => v.Yaml).FirstOrDefaultAsync(ct);

        var steps = definition is null
            ? []
            : runner.Preview(new ExecutionPlan(request.ExecutionId, definition, request.Parameters, DryRun: true));
        return new ApprovalDetail(request, yaml, match?.Version, baseYaml, steps, definition?.Prerequisites ?? [], definition?.Title ?? request.Runbook,
            await MayDecideAsync(request, ct));
    }

    private static ApprovalView ToView(ApprovalRequest r, string? parametersJson)
    {
        var decisions = r.Decisions.OrderBy(d => d.At).ThenBy(d => d.Id).ToList();
        var rejection = decisions.FirstOrDefault(d => !d.Approved);
        return new ApprovalView(r.Id, r.ExecutionId, r.RunbookName, r.Version, r.RequestedBy, r.RequestedAt, r.RequestComment, r.RequiredApprovals, r.ApproverRole,
            decisions.Where(d => d.Approved).Select(d => new ApprovalDecisionView(d.By, d.At, d.Comment)).ToList(),
            rejection is null ? null : new ApprovalDecisionView(rejection.By, rejection.At, rejection.Comment),
            r.ExpiresAt, r.Status, r.DecidedAt,
            JsonSerializer.Deserialize<Dictionary<string, string>>(r.ConditionsJson, ExecutionLedger.Json) ?? [],
            parametersJson is null ? new Dictionary<string, string>() : JsonSerializer.Deserialize<Dictionary<string, string>>(parametersJson, ExecutionLedger.Json) ?? []);
    }
}
