using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Approvals;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Executions;

public sealed record StartExecutionRequest(Dictionary<string, JsonElement>? Parameters, bool DryRun = false, int? Version = null, string? Comment = null)
{
    /// <summary>The request's <see cref="IdempotencyKeys.Header"/> (a header, never the body); null without one.</summary>
    [JsonIgnore]
    public string? IdempotencyKey { get; init; }
}

public sealed record StepView(string Id, string Name, string Action, StepStatus Status, int Attempts, DateTime? StartedAt, DateTime? FinishedAt, string? Error, bool HasRollback);

public sealed record ExecutionView(Guid Id, string Runbook, int Version, ExecutionStatus Status, string RequestedBy, DateTime RequestedAt, DateTime? StartedAt,
    DateTime? FinishedAt, bool DryRun, IReadOnlyDictionary<string, string> Parameters, string? CurrentStepId, string? FailedStepId, string? Reason, bool RolledBack,
    string? ConcurrencyKey, IReadOnlyList<StepView> Steps);

public sealed record ExecutionSummary(Guid Id, string Runbook, int Version, ExecutionStatus Status, string RequestedBy, DateTime RequestedAt, DateTime? FinishedAt, bool DryRun);

public sealed record EventView(Guid ExecutionId, long Seq, DateTime At, string Kind, string? StepId, JsonElement Data);

public sealed record ExecutionQuery(ExecutionStatus? Status = null, string? Runbook = null, string? RequestedBy = null, DateTime? From = null, DateTime? To = null, int Page = 0, int PageSize = 50);

/// <summary>
/// What starting answered: the execution, or every problem with the request. <paramref name="Replayed"/>: the
/// execution an earlier request with the same idempotency key started (nothing new was started).
/// </summary>
public sealed record StartResult(OperationResult Outcome, Guid? Id, ExecutionStatus? Status, bool Replayed = false);

/// <summary>Starting, controlling and reading executions, for the pages and the API alike.</summary>
public sealed class ExecutionService(PortalDbContext db, AuditLog audit, TimeProvider time, ExecutionNotifier notifier, RunningExecutions running, IDataProtectionProvider protection)
{
    public const string SecretMask = "***";
    internal const string SecretsPurpose = "RunbookPortal.ExecutionSecrets";

    /// <summary>
    /// Starts (queues, or sends for approval) a run of a runbook version. With an idempotency key, a start that the same
    /// actor made with that key within <see cref="IdempotencyKeys.Window"/> is answered instead (or refused when it was
    /// another request); the unique index on requester and key makes two racing requests start one run. The execution
    /// and its audit record are saved in one transaction.
    /// </summary>
    public async Task<StartResult> StartAsync(string actor, bool isAuthor, string runbookName, StartExecutionRequest request, CancellationToken ct = default)
    {
        var key = request.IdempotencyKey;
        if (key is not null)
        {
            if (IdempotencyKeys.Problem(key) is { } badKey)
                return new(OperationResult.Invalid(badKey, new Dictionary<string, string[]> { [IdempotencyKeys.Header] = [badKey] }), null, null);
            if (await EarlierStartAsync(actor, key, runbookName, request, ct) is { } earlier)
                return earlier;
        }

        var runbook = await db.Runbooks.AsNoTracking().Include(r => r.Versions).FirstOrDefaultAsync(r => r.Name == runbookName, ct);
        if (runbook is null)
            return new(OperationResult.NotFound($"There is no runbook named '{runbookName}'."), null, null);

        RunbookVersion? version;
        if (request.Version is { } wanted)
        {
            version = runbook.Versions.FirstOrDefault(v => v.Version == wanted);
            if (version is null)
                return new(OperationResult.NotFound($"Runbook '{runbookName}' has no version {wanted}."), null, null);
            if (version.Status != RunbookVersionStatus.Active && !(request.DryRun && isAuthor && version.Status is RunbookVersionStatus.Draft or RunbookVersionStatus.InReview))
                return new(OperationResult.Conflict($"Version {wanted} is {version.Status}; only the active version runs (authors may dry-run a draft)."), null, null);
        }
        else
        {
            version = runbook.Versions.FirstOrDefault(v => v.Status == RunbookVersionStatus.Active);
            if (version is null)
                return new(OperationResult.Conflict($"Runbook '{runbookName}' has no active version to run. Publish a version first (authors may dry-run a draft by naming its version)."), null, null);
        }

        var definition = RunbookValidator.Validate(version.Yaml).Definition;
        if (definition is null)
            return new(OperationResult.Conflict($"Version {version.Version} of '{runbookName}' no longer validates and cannot run."), null, null);

        var (values, errors) = BindParameters(definition, request.Parameters);
        if (errors.Count > 0)
            return new(OperationResult.Invalid("Some parameter values are not valid.", errors), null, null);
        var comment = string.IsNullOrWhiteSpace(request.Comment) ? null : request.Comment.Trim();
        if (comment is { Length: > ApprovalService.MaxComment })
            return new(OperationResult.Invalid($"A comment has at most {ApprovalService.MaxComment} characters."), null, null);

        var concurrencyKey = definition.Concurrency?.Render(values);
        if (concurrencyKey is { Length: > ConcurrencyPolicy.MaxKeyLength })
        {
            var inKey = TemplateReferences.Find(definition.Concurrency!.Key).Select(r => r.ParameterName).OfType<string>().Distinct().ToList();
            return new(OperationResult.Invalid($"The concurrency key of this runbook ('{Preview(definition.Concurrency.Key)}') comes to {concurrencyKey.Length} characters with these values; "
                + $"a key may have at most {ConcurrencyPolicy.MaxKeyLength}." + (inKey.Count == 0 ? "" : $" Give {string.Join(" or ", inKey)} a shorter value.")), null, null);
        }

        var (secrets, shown) = Split(definition, values);
        var now = time.GetUtcNow().UtcDateTime;
        var execution = new Execution
        {
            Id = Guid.NewGuid(),
            RunbookVersionId = version.Id,
            RunbookName = runbook.Name,
            Version = version.Version,
            Status = ExecutionStatus.Queued,
            DryRun = request.DryRun,
            RequestedBy = actor,
            RequestedAt = now,
            ParametersJson = JsonSerializer.Serialize(shown, ExecutionLedger.Json),
            ProtectedSecrets = secrets.Count == 0 ? null : protection.CreateProtector(SecretsPurpose).Protect(JsonSerializer.Serialize(secrets)),
            IdempotencyKey = key,
            ConcurrencyKey = concurrencyKey,
            ConcurrencyLimit = definition.Concurrency?.Limit ?? 0,
        };
        execution.Steps.AddRange(definition.Steps.Select((s, i) => new ExecutionStepRecord
        {
            ExecutionId = execution.Id,
            StepId = s.Id,
            Index = i,
            Name = s.Name,
            Action = s.Action,
            HasRollback = s.Rollback is not null,
            Status = StepStatus.Pending,
        }));
        db.Executions.Add(execution);

        var policy = ApprovalGate.For(definition, values, request.DryRun);
        ExecutionEventRecord first;
        if (policy is not null)
        {
            var approval = ApprovalService.Open(db, execution, policy, comment, now);
            execution.Status = ExecutionStatus.AwaitingApproval;
            first = ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionAwaitingApproval, null, new
            {
                by = actor,
                approvalId = approval.Id,
                requiredApprovals = policy.RequiredApprovals,
                approverRole = policy.ApproverRole,
                when = policy.When,
                expiresAt = approval.ExpiresAt,
                policy = ApprovalGate.Describe(policy),
            }), now);
        }
        else
        {
            first = ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = actor, dryRun = request.DryRun, version = version.Version }), now);
        }
        if (key is not null)
        {
            // A key stands for its request for 24 hours; after that a new start takes it over from the run that had it.
            var expired = now - IdempotencyKeys.Window;
            await db.Executions.Where(e => e.RequestedBy == actor && e.IdempotencyKey == key && e.RequestedAt <= expired)
                .ExecuteUpdateAsync(u => u.SetProperty(e => e.IdempotencyKey, (string?)null), ct);
        }
        try
        {
            await audit.SaveWithAsync(db, actor, "execution.started", $"{runbook.Name} v{version.Version}",
                new { executionId = execution.Id, dryRun = request.DryRun, parameters = shown, awaitingApproval = policy is not null, comment, idempotencyKey = key }, ct);
        }
        catch (DbUpdateException) when (key is not null)
        {
            // Most likely a request with the same key was saved first (the unique index): then its execution is the answer.
            db.ChangeTracker.Clear();
            if (await EarlierStartAsync(actor, key, runbookName, request, ct) is { } earlier)
                return earlier;
            // The run that held the key passed its 24 hours while this request was being saved: nothing was started.
            return new(OperationResult.Conflict($"Another start with this {IdempotencyKeys.Header} was being saved at the same moment, and nothing was started by this one. Send the request again."), null, null);
        }
        notifier.Publish(first);
        if (policy is null)
            notifier.WorkQueued();
        return new(OperationResult.Ok, execution.Id, execution.Status);
    }

    /// <summary>
    /// The execution <paramref name="actor"/> started with <paramref name="key"/> within the last 24 hours, when this is
    /// the same request again (same runbook, dry-run flag, version if it names one, and parameter values, secrets
    /// included, as bound by that execution's version); a 422 when the key was used for another request; null when the
    /// key is free.
    /// </summary>
    private async Task<StartResult?> EarlierStartAsync(string actor, string key, string runbookName, StartExecutionRequest request, CancellationToken ct)
    {
        var since = time.GetUtcNow().UtcDateTime - IdempotencyKeys.Window;
        var earlier = await db.Executions.AsNoTracking()
            .Where(e => e.RequestedBy == actor && e.IdempotencyKey == key && e.RequestedAt > since)
            .Select(e => new { e.Id, e.Status, e.RunbookName, e.Version, e.RunbookVersionId, e.DryRun, e.RequestedAt, e.ParametersJson, e.ProtectedSecrets })
            .FirstOrDefaultAsync(ct);
        if (earlier is null)
            return null;

        var difference = earlier.RunbookName != runbookName ? $"for the runbook '{earlier.RunbookName}', not '{runbookName}'"
            : request.Version is { } wanted && wanted != earlier.Version ? $"for version {earlier.Version}, not {wanted}"
            : request.DryRun != earlier.DryRun ? (earlier.DryRun ? "as a dry run, and this request is a real run" : "as a real run, and this request is a dry run")
            : await ParameterDifferenceAsync(earlier.RunbookVersionId, earlier.ParametersJson, earlier.ProtectedSecrets, request.Parameters, ct);
        if (difference is not null)
            return new(OperationResult.Unprocessable($"This {IdempotencyKeys.Header} was already used for another request: you started execution {earlier.Id} "
                + $"({earlier.RunbookName} v{earlier.Version}) with it at {earlier.RequestedAt:yyyy-MM-dd HH:mm:ss} UTC, {difference}. "
                + "A key stands for one request for 24 hours; send a new key for a new request."), null, null);
        return new(OperationResult.Ok, earlier.Id, earlier.Status, Replayed: true);
    }

    /// <summary>
    /// Null when <paramref name="given"/>, bound by the version an execution ran (defaults filled in, values in their one
    /// spelling), are the values it ran with, secrets included; else how they differ, or why they cannot be compared.
    /// </summary>
    private async Task<string?> ParameterDifferenceAsync(Guid versionId, string parametersJson, string? protectedSecrets, Dictionary<string, JsonElement>? given, CancellationToken ct)
    {
        if (await DefinitionOfAsync(versionId, ct) is not { } definition)
            return "with a version that no longer validates, so these values cannot be compared with its";
        var (values, errors) = BindParameters(definition, given);
        if (errors.Count > 0)
            return "with other parameter values";
        var (secrets, shown) = Split(definition, values);
        var ranShown = JsonSerializer.Deserialize<Dictionary<string, string>>(parametersJson, ExecutionLedger.Json) ?? [];
        Dictionary<string, string> ranSecrets;
        try
        {
            ranSecrets = protectedSecrets is null ? []
                : JsonSerializer.Deserialize<Dictionary<string, string>>(protection.CreateProtector(SecretsPurpose).Unprotect(protectedSecrets)) ?? [];
        }
        catch (System.Security.Cryptography.CryptographicException)
        {
            return "with secret values this portal can no longer read (its keys changed), so they cannot be compared";
        }
        return Same(shown, ranShown) && Same(secrets, ranSecrets) ? null : "with other parameter values";

        static bool Same(Dictionary<string, string> a, Dictionary<string, string> b) =>
            a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var other) && other == kv.Value);
    }

    /// <summary>The secret values of a run (to be sealed) and all its values as shown, secrets masked.</summary>
    private static (Dictionary<string, string> Secrets, Dictionary<string, string> Shown) Split(RunbookDefinition definition, Dictionary<string, string> values)
    {
        var secrets = definition.Parameters.Where(p => p.Type == ParameterType.Secret && values.ContainsKey(p.Name)).ToDictionary(p => p.Name, p => values[p.Name]);
        return (secrets, values.ToDictionary(kv => kv.Key, kv => secrets.ContainsKey(kv.Key) ? SecretMask : kv.Value));
    }

    private static string Preview(string text) => text.Length <= 60 ? text : text[..57] + "...";

    /// <summary>Checks every value against its declaration; answers the values (defaults filled in) or an error per field.</summary>
    internal static (Dictionary<string, string> Values, Dictionary<string, string[]> Errors) BindParameters(RunbookDefinition definition, Dictionary<string, JsonElement>? given)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var errors = new Dictionary<string, string[]>(StringComparer.Ordinal);
        given ??= [];
        foreach (var name in given.Keys.Where(k => definition.FindParameter(k) is null))
            errors[$"parameters.{name}"] = [$"'{name}' is not a parameter of this runbook. Its parameters are: {string.Join(", ", definition.Parameters.Select(p => p.Name))}."];
        foreach (var p in definition.Parameters)
        {
            if (p.FromSsm is not null)
            {
                // Read from Parameter Store when the run starts, never given, never stored.
                if (given.TryGetValue(p.Name, out var offered) && offered.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined)
                    && !(offered.ValueKind == JsonValueKind.String && offered.GetString() is ""))
                    errors[$"parameters.{p.Name}"] = [$"'{p.Name}' is read from SSM Parameter Store ({p.FromSsm}) when the run starts; leave it out."];
                continue;
            }
            string? value = null;
            if (given.TryGetValue(p.Name, out var raw) && raw.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined))
            {
                value = raw.ValueKind switch
                {
                    JsonValueKind.String => raw.GetString(),
                    JsonValueKind.True => "true",
                    JsonValueKind.False => "false",
                    JsonValueKind.Number => raw.GetRawText(),
                    _ => null,
                };
                if (value is null)
                {
                    errors[$"parameters.{p.Name}"] = [$"'{p.Name}' must be a single {p.TypeName} value, not a list or an object."];
                    continue;
                }
            }
            if (string.IsNullOrEmpty(value))
                value = p.Default;
            if (string.IsNullOrEmpty(value))
            {
                if (p.Required)
                    errors[$"parameters.{p.Name}"] = [$"'{p.Name}' is required."];
                continue;
            }
            if (p.CheckValue(value) is { } problem)
            {
                errors[$"parameters.{p.Name}"] = [Describe(p, problem)];
                continue;
            }
            values[p.Name] = p.Canonical(value);
        }
        return (values, errors);
    }


    /// <summary>
    /// Loads the execution, applies <paramref name="change"/> (which validates the state and appends its events),
    /// saves; when the worker appended an event meanwhile (seq taken), reloads and tries again.
    /// </summary>
    private Task<OperationResult> MutateAsync(Guid id, Func<Execution, DateTime, OperationResult> change, CancellationToken ct) =>
        MutateAsync(id, (e, now) => Task.FromResult(change(e, now)), ct);

    private async Task<OperationResult> MutateAsync(Guid id, Func<Execution, DateTime, Task<OperationResult>> change, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            var execution = await db.Executions.Include(e => e.Steps).FirstOrDefaultAsync(e => e.Id == id, ct);
            if (execution is null)
                return OperationResult.NotFound("There is no such execution.");
            var result = await change(execution, time.GetUtcNow().UtcDateTime);
            if (!result.Succeeded)
                return result;
            var added = db.ChangeTracker.Entries<ExecutionEventRecord>().Where(e => e.State == EntityState.Added).Select(e => e.Entity).ToList();
            try
            {
                await db.SaveChangesAsync(ct);
            }
            catch (DbUpdateException) when (attempt < 10)
            {
                db.ChangeTracker.Clear();
                continue;
            }
            foreach (var record in added)
                notifier.Publish(record);
            return result;
        }
    }

    /// <summary>The approval of a gated execution (tracked), or null when it has none.</summary>
    private Task<ApprovalRequest?> ApprovalOfAsync(Execution execution, CancellationToken ct) =>
        execution.ApprovalRequestId is { } approvalId
            ? db.ApprovalRequests.FirstOrDefaultAsync(a => a.Id == approvalId, ct)
            : Task.FromResult<ApprovalRequest?>(null);

    /// <summary>The definition of a runbook version (the one an execution pinned); null when it no longer validates.</summary>
    private async Task<RunbookDefinition?> DefinitionOfAsync(Guid versionId, CancellationToken ct)
    {
        var yaml = await db.RunbookVersions.AsNoTracking().Where(v => v.Id == versionId).Select(v => v.Yaml).FirstOrDefaultAsync(ct);
        return yaml is null ? null : RunbookValidator.Validate(yaml).Definition;
    }

    /// <summary>Resume and rollback run steps again: only for a run that passed its approval, unchanged.</summary>
    private async Task<OperationResult> GateAsync(Execution execution, RunbookDefinition? definition, CancellationToken ct)
    {
        if (ApprovalService.Passed(execution, await ApprovalOfAsync(execution, ct), definition))
            return OperationResult.Ok;
        return OperationResult.Conflict("This run did not pass its approval (it was never granted, or it was withdrawn when the run was cancelled before it started), so none of its steps can run. Start a new run to ask for approval again.");
    }

    /// <summary>The reason a run's version may not run again, unless an Admin forces it; null when it may.</summary>
    private async Task<OperationResult> VersionRunnableAsync(Execution execution, bool force, bool isAdmin, CancellationToken ct)
    {
        var status = await db.RunbookVersions.Where(v => v.Id == execution.RunbookVersionId).Select(v => (RunbookVersionStatus?)v.Status).FirstOrDefaultAsync(ct);
        if (status is RunbookVersionStatus.Deprecated or RunbookVersionStatus.Archived && !(force && isAdmin))
            return OperationResult.Conflict($"Version {execution.Version} of {execution.RunbookName} is {status}; it may no longer run. Start the active version instead"
                                            + (isAdmin ? ", or resume with force." : ", or ask an Admin to force it."));
        return OperationResult.Ok;
    }

    /// <summary>The validator's fragment ("is above the maximum 10") as a sentence about the parameter.</summary>
    internal static string Describe(ParameterDefinition p, string problem) =>
        $"{p.Name} {problem}" + (p.Type == ParameterType.Secret || problem.EndsWith('.') ? "" : ".");

    public async Task<OperationResult> CancelAsync(string actor, Guid id, bool rollback, CancellationToken ct = default)
    {
        var wasRunning = false;
        var stopRollback = false;
        var queued = false;
        var target = "";
        var result = await MutateAsync(id, async (execution, now) =>
        {
            target = $"{execution.RunbookName} v{execution.Version}";
            switch (execution.Status)
            {
                case ExecutionStatus.AwaitingApproval:
                    // Final: the approval is closed with it, so this run can never be resumed or rolled back.
                    if (await ApprovalOfAsync(execution, ct) is { Status: ApprovalStatus.Pending } approval)
                        ApprovalService.CloseCancelled(approval, now);
                    ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionCancelled, null, new { by = actor, reason = $"Cancelled by {actor} while it waited for approval; it will not run." }), now);
                    return OperationResult.Ok;
                case ExecutionStatus.Queued:
                    // An approved run cancelled before it ever started is as final as one cancelled while it waited:
                    // the approval was for that start, and it is withdrawn with it.
                    if (execution.StartedAt is null && await ApprovalOfAsync(execution, ct) is { } granted)
                        ApprovalService.CloseCancelled(granted, now);
                    ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionCancelled, null, new { by = actor, reason = $"Cancelled by {actor} before it ran." }), now);
                    return OperationResult.Ok;
                case ExecutionStatus.WaitingForInput:
                    queued = CancelWhileWaiting(db, execution, actor, rollback, now);
                    return OperationResult.Ok;
                case ExecutionStatus.RollingBack:
                    // A second cancel: the rollback stops where it is (a hung rollback must not hang the run), and the run ends Failed.
                    if (execution.RollbackStopRequestedBy is not null)
                        return OperationResult.Ok;
                    stopRollback = true;
                    execution.RollbackStopRequestedBy = actor;
                    ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionRollbackStopRequested, execution.CurrentStepId, new { by = actor }), now);
                    return OperationResult.Ok;
                case ExecutionStatus.Running:
                    wasRunning = true;
                    if (execution.CancelRequested)
                        return execution.CancelRollback == rollback
                            ? OperationResult.Ok
                            : OperationResult.Conflict($"A cancel {(execution.CancelRollback ? "with" : "without")} rollback is already under way.");
                    execution.CancelRequested = true;
                    execution.CancelRollback = rollback;
                    execution.CancelRequestedBy = actor;
                    ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionCancelRequested, execution.CurrentStepId, new { by = actor, rollback }), now);
                    return OperationResult.Ok;
                default:
                    return OperationResult.Conflict(NotCancellable(execution));
            }
        }, ct);
        if (!result.Succeeded)
            return result;
        if (wasRunning)
            running.Cancel(id, actor, rollback);
        if (stopRollback)
            running.StopRollback(id, actor);
        if (queued)
            notifier.WorkQueued();
        await audit.WriteAsync(actor, "execution.cancelled", target, new { executionId = id, rollback }, ct);
        return result;
    }

    /// <summary>Why a run that no node runs and nothing waits on cannot be cancelled, and what can be done instead.</summary>
    private static string NotCancellable(Execution e)
    {
        var at = e.FailedStepId is { } step ? $" at step '{step}'" : "";
        var undone = e.RolledBack ? " and was rolled back" : "";
        var instead = e.RolledBack ? " Start a new run instead." : " Resume it or roll it back instead.";
        var why = e.Status switch
        {
            ExecutionStatus.Interrupted => $"it was interrupted{at} before it finished (the node running it stopped){undone}.{instead}",
            ExecutionStatus.Failed => $"it already failed{at}{undone}.{instead}",
            ExecutionStatus.Cancelled => $"it was already cancelled{undone}.",
            ExecutionStatus.Succeeded => "it already succeeded.",
            ExecutionStatus.Rejected => "its approval was rejected, so it never ran.",
            ExecutionStatus.Expired => "its approval expired before enough people approved it, so it never ran.",
            _ => $"it is {e.Status}.",
        };
        return "The execution is not running, so there is nothing to cancel: " + why;
    }

    /// <summary>
    /// Cancels a run suspended at a manual step: no node holds it, so the cancel is recorded here; with
    /// <paramref name="rollback"/> its rollback is queued (answers true then).
    /// </summary>
    internal static bool CancelWhileWaiting(PortalDbContext db, Execution execution, string actor, bool rollback, DateTime now)
    {
        execution.CancelRequested = false;
        execution.RollbackStopRequestedBy = null;
        if (!rollback)
        {
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionCancelled, execution.CurrentStepId,
                new { by = actor, reason = $"cancelled by {actor} while step '{execution.CurrentStepId}' waited for input" }), now);
            return false;
        }
        execution.Mode = ExecutionMode.Rollback;
        ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionRollbackRequested, execution.CurrentStepId, new { by = actor, cancelled = true }), now);
        ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = actor, rollback = true }), now);
        return true;
    }

    /// <summary>
    /// Queues a failed, interrupted or cancelled execution again, from the chosen step (default: the failed one) —
    /// only if it passed its approval and its version may still run (<paramref name="force"/>: an Admin runs a
    /// Deprecated or Archived version anyway, audited).
    /// </summary>
    public async Task<OperationResult> ResumeAsync(string actor, Guid id, string? fromStep, CancellationToken ct = default, bool force = false, bool isAdmin = false)
    {
        string? resumedFrom = null;
        var target = "";
        var forced = false;
        var result = await MutateAsync(id, async (execution, now) =>
        {
            target = $"{execution.RunbookName} v{execution.Version}";
            if (execution.Status is not (ExecutionStatus.Failed or ExecutionStatus.Interrupted or ExecutionStatus.Cancelled))
                return OperationResult.Conflict($"The execution is {execution.Status}; only a failed, interrupted or cancelled execution can be resumed.");
            if (execution.RolledBack)
                return OperationResult.Conflict("The execution was rolled back; start a new one instead.");
            var definition = await DefinitionOfAsync(execution.RunbookVersionId, ct);
            if (await GateAsync(execution, definition, ct) is { Succeeded: false } gate)
                return gate;
            if (await VersionRunnableAsync(execution, force, isAdmin, ct) is { Succeeded: false } refused)
                return refused;
            forced = force && isAdmin;
            var stepId = fromStep ?? DefaultResumeStep(execution, definition);
            var step = execution.Steps.FirstOrDefault(s => s.StepId == stepId);
            if (step is null)
                return OperationResult.Invalid($"There is no step '{stepId}' in this execution.");
            var missing = execution.Steps.Where(s => s.Index < step.Index && !GotPast(s, definition)).OrderBy(s => s.Index).Select(s => s.StepId).ToList();
            if (missing.Count > 0)
                return OperationResult.Conflict($"Steps before '{stepId}' did not succeed ({string.Join(", ", missing)}); resume from the first of them.");
            foreach (var s in execution.Steps.Where(s => s.Index >= step.Index))
            {
                s.Status = StepStatus.Pending;
                s.SucceededOrder = null;
                s.Error = null;
                s.StartedAt = null; // the step's duration is that of its run after the resume
                s.FinishedAt = null;
                s.Attempts = 0;
            }
            execution.StartAt = step.Index;
            execution.Mode = ExecutionMode.Run;
            execution.CancelRequested = false;
            execution.RollbackStopRequestedBy = null;
            execution.FailedStepId = null;
            execution.Reason = null;
            // A manual step from here on asks again: a decision taken for the earlier run does not carry over.
            execution.InputStepId = execution.InputDecision = execution.InputBy = execution.InputComment = null;
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionResumed, step.StepId, new { by = actor, fromStep = step.StepId, forced }), now);
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = actor, resume = true }), now);
            resumedFrom = step.StepId;
            return OperationResult.Ok;
        }, ct);
        if (!result.Succeeded)
            return result;
        notifier.WorkQueued();
        await audit.WriteAsync(actor, forced ? "execution.resumed-forced" : "execution.resumed", target, new { executionId = id, fromStep = resumedFrom, forced }, ct);
        return result;
    }

    /// <summary>
    /// The steps a resume of this execution may start from, in order — each step up to the first one the run did not get
    /// past — and the one to propose (the failed step); nothing when there is no such execution.
    /// </summary>
    public async Task<(IReadOnlyList<string> Steps, string? Proposed)> ResumeChoicesAsync(Guid id, CancellationToken ct = default)
    {
        var execution = await db.Executions.AsNoTracking().Include(e => e.Steps).FirstOrDefaultAsync(e => e.Id == id, ct);
        if (execution is null)
            return ([], null);
        var definition = await DefinitionOfAsync(execution.RunbookVersionId, ct);
        var ordered = execution.Steps.OrderBy(s => s.Index).ToList();
        var firstOpen = ordered.FindIndex(s => !GotPast(s, definition));
        var steps = (firstOpen < 0 ? ordered : ordered.Take(firstOpen + 1)).Select(s => s.StepId).ToList();
        var proposed = DefaultResumeStep(execution, definition) is { } failed && steps.Contains(failed) ? failed : steps.LastOrDefault();
        return (steps, proposed);
    }

    /// <summary>
    /// Whether the run got past a step: it succeeded or was skipped, or it is optional and failed — that failure never
    /// stopped the run, so it does not stop a resume past it either.
    /// </summary>
    private static bool GotPast(ExecutionStepRecord step, RunbookDefinition? definition) =>
        step.Status is StepStatus.Succeeded or StepStatus.Skipped
        || (step.Status is StepStatus.Failed or StepStatus.TimedOut && definition?.Steps.FirstOrDefault(d => d.Id == step.StepId) is { Required: false });

    /// <summary>Where a resume starts when no step is named: the failed step, else the first step the run did not get past.</summary>
    private static string? DefaultResumeStep(Execution execution, RunbookDefinition? definition) =>
        execution.FailedStepId ?? execution.Steps.OrderBy(s => s.Index).FirstOrDefault(s => !GotPast(s, definition))?.StepId;

    /// <summary>Queues the rollback of a failed, interrupted or cancelled execution's succeeded steps (only of a run that passed its approval).</summary>
    public async Task<OperationResult> RollbackAsync(string actor, Guid id, CancellationToken ct = default)
    {
        var target = "";
        var result = await MutateAsync(id, async (execution, now) =>
        {
            target = $"{execution.RunbookName} v{execution.Version}";
            if (execution.Status is not (ExecutionStatus.Failed or ExecutionStatus.Interrupted or ExecutionStatus.Cancelled) || execution.RolledBack)
                return OperationResult.Conflict($"The execution is {execution.Status}{(execution.RolledBack ? " and already rolled back" : "")}; only a failed, interrupted or cancelled run that was not rolled back can be.");
            if (await GateAsync(execution, await DefinitionOfAsync(execution.RunbookVersionId, ct), ct) is { Succeeded: false } gate)
                return gate;
            execution.Mode = ExecutionMode.Rollback;
            execution.CancelRequested = false;
            execution.RollbackStopRequestedBy = null;
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionRollbackRequested, null, new { by = actor }), now);
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = actor, rollback = true }), now);
            return OperationResult.Ok;
        }, ct);
        if (!result.Succeeded)
            return result;
        notifier.WorkQueued();
        await audit.WriteAsync(actor, "execution.rollback-requested", target, new { executionId = id }, ct);
        return result;
    }

    /// <summary>
    /// A person's decision on a manual step that waits: continue, or abort (a required step's abort rolls back like any
    /// failure). Only holders of the step's role (default Operator) or an Admin decide; the run is queued with the
    /// decision and a node carries it on.
    /// </summary>
    public async Task<OperationResult> DecideStepAsync(string actor, Guid id, string stepId, ManualDecision decision, string? comment, CancellationToken ct = default)
    {
        comment = string.IsNullOrWhiteSpace(comment) ? null : comment.Trim();
        if (comment is { Length: > ApprovalService.MaxComment })
            return OperationResult.Invalid($"A comment has at most {ApprovalService.MaxComment} characters.");
        var roles = await db.RolesOfAsync(actor, ct);
        var target = "";
        string? carriedOut = null;
        var queuedRollback = false;
        var result = await MutateAsync(id, (execution, now) =>
        {
            target = $"{execution.RunbookName} v{execution.Version}";
            carriedOut = null;
            queuedRollback = false;
            if (execution.Steps.All(s => s.StepId != stepId))
                return OperationResult.NotFound($"There is no step '{stepId}' in this execution.");
            if (execution.Status != ExecutionStatus.WaitingForInput || execution.CurrentStepId != stepId || execution.InputDecision is not null)
                return OperationResult.Conflict($"Step '{stepId}' is not waiting for input (the execution is {execution.Status}).");
            var role = execution.InputRole ?? Roles.Operator;
            if (!roles.Contains(role) && !roles.Contains(Roles.Admin))
                return OperationResult.Forbidden($"Only people with the {role} role (or an Admin) can continue or abort step '{stepId}'.");
            if (execution.CancelRequested)
            {
                // Cancelled while its last step ran, before the node saw it: the cancel wins over any decision.
                carriedOut = $"The run was cancelled by {execution.CancelRequestedBy} before this step was reached; the cancel is carried out instead.";
                queuedRollback = CancelWhileWaiting(db, execution, execution.CancelRequestedBy ?? actor, execution.CancelRollback, now);
                return OperationResult.Ok;
            }
            if (execution.InputDeadline is { } deadline && deadline <= now)
            {
                // Past its timeout the step is aborted, whether or not the worker got to it first.
                carriedOut = $"Step '{stepId}' timed out at {deadline:yyyy-MM-dd HH:mm:ss} UTC; it is aborted as timed out.";
                ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.StepInputReceived, stepId, new { decision = "timedout", by = "portal", comment = (string?)null }), now);
                ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = "portal", input = "timedout" }), now);
                queuedRollback = true;
                return OperationResult.Ok;
            }
            var word = decision == ManualDecision.Continue ? "continue" : "abort";
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.StepInputReceived, stepId, new { decision = word, by = actor, comment }), now);
            execution.Mode = ExecutionMode.Run;
            ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = actor, input = word }), now);
            return OperationResult.Ok;
        }, ct);
        if (!result.Succeeded)
            return result;
        if (carriedOut is not null)
        {
            if (queuedRollback)
                notifier.WorkQueued();
            return OperationResult.Conflict(carriedOut);
        }
        notifier.WorkQueued();
        await audit.WriteAsync(actor, decision == ManualDecision.Continue ? "execution.step-continued" : "execution.step-aborted", target, new { executionId = id, stepId, comment }, ct);
        return result;
    }

    /// <summary>The decision a carried-on run takes to the manual step it stopped at ("continue", "abort", "timedout").</summary>
    internal static ManualInput? InputOf(Execution execution) =>
        execution is { InputStepId: { } step, InputDecision: { } word }
            ? new ManualInput(step, word switch { "continue" => ManualDecision.Continue, "timedout" => ManualDecision.TimedOut, _ => ManualDecision.Abort }, execution.InputBy ?? "", execution.InputComment)
            : null;

    public async Task<(List<ExecutionSummary> Items, int Total)> ListAsync(ExecutionQuery q, CancellationToken ct = default)
    {
        var executions = db.Executions.AsNoTracking();
        if (q.Status is { } s)
            executions = executions.Where(e => e.Status == s);
        if (!string.IsNullOrWhiteSpace(q.Runbook))
            executions = executions.Where(e => e.RunbookName == q.Runbook);
        if (!string.IsNullOrWhiteSpace(q.RequestedBy))
            executions = executions.Where(e => e.RequestedBy == q.RequestedBy);
        if (q.From is { } from)
            executions = executions.Where(e => e.RequestedAt >= from);
        if (q.To is { } to)
            executions = executions.Where(e => e.RequestedAt <= to);
        var total = await executions.CountAsync(ct);
        var items = await executions.OrderByDescending(e => e.RequestedAt).Page(q.Page, q.PageSize)
            .Select(e => new ExecutionSummary(e.Id, e.RunbookName, e.Version, e.Status, e.RequestedBy, e.RequestedAt, e.FinishedAt, e.DryRun)).ToListAsync(ct);
        return (items, total);
    }

    public async Task<ExecutionView?> GetAsync(Guid id, CancellationToken ct = default)
    {
        var e = await db.Executions.AsNoTracking().Include(x => x.Steps).FirstOrDefaultAsync(x => x.Id == id, ct);
        if (e is null)
            return null;
        var parameters = JsonSerializer.Deserialize<Dictionary<string, string>>(e.ParametersJson, ExecutionLedger.Json) ?? [];
        return new ExecutionView(e.Id, e.RunbookName, e.Version, e.Status, e.RequestedBy, e.RequestedAt, e.StartedAt, e.FinishedAt, e.DryRun, parameters,
            e.CurrentStepId, e.FailedStepId, e.Reason, e.RolledBack, e.ConcurrencyKey,
            e.Steps.OrderBy(s => s.Index).Select(s => new StepView(s.StepId, s.Name, s.Action, s.Status, s.Attempts, s.StartedAt, s.FinishedAt, s.Error, s.HasRollback)).ToList());
    }

    public Task<bool> ExistsAsync(Guid id, CancellationToken ct = default) => db.Executions.AnyAsync(e => e.Id == id, ct);

    public async Task<List<EventView>> EventsAsync(Guid id, long after, int limit = 1000, CancellationToken ct = default)
    {
        var rows = await db.ExecutionEvents.AsNoTracking().Where(ev => ev.ExecutionId == id && ev.Seq > after)
            .OrderBy(ev => ev.Seq).Take(Math.Clamp(limit, 1, 5000)).ToListAsync(ct);
        return rows.Select(ToView).ToList();
    }

    /// <summary>Every event the run has recorded, in seq order, read in one query as it is consumed.</summary>
    public IAsyncEnumerable<ExecutionEventRecord> RecordsAsync(Guid id) =>
        db.ExecutionEvents.AsNoTracking().Where(ev => ev.ExecutionId == id).OrderBy(ev => ev.Seq).AsAsyncEnumerable();

    /// <summary>
    /// What a page shows before it is interactive: every event but output, and the last <paramref name="lines"/>
    /// output lines, in seq order (two small reads, however long the log).
    /// </summary>
    public async Task<List<ExecutionEventRecord>> TailAsync(Guid id, int lines, CancellationToken ct = default)
    {
        var rest = await db.ExecutionEvents.AsNoTracking()
            .Where(ev => ev.ExecutionId == id && ev.Kind != EventKinds.StepOutput && ev.Kind != EventKinds.StepOutputTruncated).ToListAsync(ct);
        var tail = await db.ExecutionEvents.AsNoTracking()
            .Where(ev => ev.ExecutionId == id && (ev.Kind == EventKinds.StepOutput || ev.Kind == EventKinds.StepOutputTruncated))
            .OrderByDescending(ev => ev.Seq).Take(lines).ToListAsync(ct);
        return [.. rest.Concat(tail).OrderBy(ev => ev.Seq)];
    }

    /// <summary>Whether <paramref name="stepId"/> names a step of the execution, or the rollback of one ("&lt;id&gt;.rollback").</summary>
    public Task<bool> HasStepAsync(Guid id, string stepId, CancellationToken ct = default)
    {
        var undone = stepId.EndsWith(".rollback", StringComparison.Ordinal) ? stepId[..^".rollback".Length] : null;
        return db.ExecutionSteps.AnyAsync(s => s.ExecutionId == id && (s.StepId == stepId || (undone != null && s.StepId == undone && s.HasRollback)), ct);
    }

    /// <summary>
    /// The run's output (of one step, or of one rollback, when <paramref name="stepId"/> is given), in seq order, read from
    /// the database a page at a time: a log of any length is never held in memory at once.
    /// </summary>
    public async IAsyncEnumerable<LogLine> LogAsync(Guid id, string? stepId, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        const int page = 2000;
        long after = 0;
        while (true)
        {
            var rows = await db.ExecutionEvents.AsNoTracking()
                .Where(ev => ev.ExecutionId == id && ev.Seq > after && (ev.Kind == EventKinds.StepOutput || ev.Kind == EventKinds.StepOutputTruncated)
                             && (stepId == null || ev.StepId == stepId))
                .OrderBy(ev => ev.Seq).Take(page).ToListAsync(ct);
            foreach (var row in rows)
                if (LogLine.Of(row) is { } line)
                    yield return line;
            if (rows.Count < page)
                yield break;
            after = rows[^1].Seq;
        }
    }

    public static EventView ToView(ExecutionEventRecord r)
    {
        using var data = JsonDocument.Parse(r.DataJson);
        return new(r.ExecutionId, r.Seq, r.At, r.Kind, r.StepId, data.RootElement.Clone());
    }
}
