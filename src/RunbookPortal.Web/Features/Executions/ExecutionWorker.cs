using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Text.Json;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Engine.Execution.Steps.Aws;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Audit;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// Section "Engine": how this node runs its queue and its shell steps. The runner's own settings of the same section
/// (<c>MaxOutputBytesPerStep</c>, <c>RetryJitterFraction</c>, <c>MaxRetryDelay</c>, <c>DefaultStepTimeout</c>,
/// <c>RegexTimeout</c>) are <see cref="ExecutionOptions"/>, bound from it too; no setting is in both. The attributes
/// are the allowed ranges, checked when the portal starts.
/// </summary>
public sealed class EngineOptions
{
    public const string Section = "Engine";

    /// <summary>Executions this node runs at once.</summary>
    [Range(1, 1000)]
    public int MaxConcurrentExecutions { get; set; } = 8;

    /// <summary>How long a claim lasts without a heartbeat; after that another node marks the run Interrupted.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan LeaseDuration { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Fallback polling when no wake-up arrives (other nodes' work, expired leases).</summary>
    [Range(typeof(TimeSpan), "00:00:00.050", "00:05:00")]
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// With PostgreSQL, how often each execution watched on this node reads what a lost notification from another node
    /// may have hidden (the notifications themselves arrive at once).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00")]
    public TimeSpan EventSweepInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>On shutdown, how long running steps may go on before they are stopped (and the run is Interrupted).</summary>
    [Range(typeof(TimeSpan), "00:00:00", "01:00:00")]
    public TimeSpan ShutdownGrace { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>This node's name in leases; defaults to host name and process id.</summary>
    public string? NodeId { get; set; }

    /// <summary>Working directory of shell steps (default: a private folder per execution under the data folder's <c>runs</c>).</summary>
    public string? WorkingDirectory { get; set; }

    /// <summary>Extra environment variables for shell steps.</summary>
    public Dictionary<string, string> Environment { get; set; } = [];

    /// <summary>After SIGTERM (timeout, cancel, shutdown), how long a shell step has to end before SIGKILL.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00")]
    public TimeSpan KillGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A user of this machine that every shell step runs as (the portal must run as root): steps then cannot read the
    /// portal's environment, database file or keys. Not set: steps run as the portal's own user.
    /// </summary>
    public string? RunAs { get; set; }

    /// <summary>How often a running execution's lease is renewed.</summary>
    public TimeSpan HeartbeatInterval => LeaseDuration / 6;

    /// <summary>
    /// Fencing: a node that has not renewed a lease for this long stops the run's step itself and records nothing more,
    /// so the step is gone (SIGTERM, <see cref="KillGrace"/>, SIGKILL) before the lease can expire and another node
    /// take the run over; a sixth of the lease is left for the clocks' drift and the process's exit.
    /// </summary>
    public TimeSpan FenceAfter => LeaseDuration - KillGrace - LeaseDuration / 6;

    public string ResolveNodeId() => string.IsNullOrWhiteSpace(NodeId) ? $"{System.Environment.MachineName}:{System.Environment.ProcessId}" : NodeId;
}

/// <summary>The controls of the executions this node is running, so a cancel reaches the running step at once.</summary>
public sealed class RunningExecutions
{
    private readonly ConcurrentDictionary<Guid, ExecutionControl> _controls = new();

    public int Count => _controls.Count;
    /// <summary>A run of <paramref name="id"/> starts here (a resumed run may start before the last one has let go).</summary>
    internal void Add(Guid id, ExecutionControl control) => _controls[id] = control;

    /// <summary>That run has ended: its control goes, not a later run's.</summary>
    internal void Remove(Guid id, ExecutionControl control) => _controls.TryRemove(new KeyValuePair<Guid, ExecutionControl>(id, control));

    /// <summary>Node shutdown: every running step may finish, no further step starts (the runs end Interrupted).</summary>
    public void RequestStopAll()
    {
        foreach (var control in _controls.Values)
            control.RequestStop();
    }

    /// <summary>Stops the rollback of a run on this node; false when it runs elsewhere (that node sees the flag at its next heartbeat).</summary>
    public bool StopRollback(Guid id, string by)
    {
        if (!_controls.TryGetValue(id, out var control) || control.RollbackStopToken.IsCancellationRequested)
            return false;
        control.StopRollback(by);
        return true;
    }

    /// <summary>Cancels a run on this node; false when it runs elsewhere (that node sees the flag at its next heartbeat).</summary>
    public bool Cancel(Guid id, string by, bool rollback)
    {
        if (!_controls.TryGetValue(id, out var control) || control.CancelToken.IsCancellationRequested)
            return false;
        control.Cancel(by, rollback);
        return true;
    }
}

/// <summary>
/// Claims queued executions under a lease (PostgreSQL: an advisory lock plus FOR UPDATE SKIP LOCKED; SQLite: one
/// writer), runs each in its own DI scope, renews the lease by heartbeat, marks runs whose lease expired as
/// Interrupted, honours MaxConcurrentExecutions and each runbook's concurrency key, wakes at once on new work,
/// and on shutdown stops claiming while running steps get a grace period.
/// At-least-once checkpoints: claim (row + event in one transaction), every engine event, release.
/// </summary>
public sealed class ExecutionWorker(
    IServiceScopeFactory scopes,
    ExecutionNotifier notifier,
    RunningExecutions running,
    IOptions<EngineOptions> options,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<ExecutionWorker> logger) : BackgroundService
{
    /// <summary>The PostgreSQL advisory lock every node's claim pass holds for its transaction (one pass at a time).</summary>
    internal const long ClaimLockKey = 0x52425045_58454321; // "RBPEXEC!"
    /// <summary><see cref="ExecutionLedger.HoldingASlot"/> as an SQL list (statuses are stored by name).</summary>
    private static readonly string SlotStatuses = string.Join(", ", ExecutionLedger.HoldingASlot.Select(s => $"'{s}'"));

    /// <summary>
    /// PostgreSQL: the oldest queued runs that may start, locked for this claim (others' claims skip them). A run whose
    /// concurrency key is at its limit is left out here, so any number of them waiting cannot keep a runnable run out of
    /// the window. Built of constants only.
    /// </summary>
    private static readonly string ClaimSql = $"""
        SELECT q.* FROM "Executions" q
        WHERE q."Status" = 'Queued'
          AND (q."ApprovalRequestId" IS NULL OR EXISTS (SELECT 1 FROM "ApprovalRequests" a
               WHERE a."Id" = q."ApprovalRequestId" AND a."Status" = 'Approved'))
          AND (q."ConcurrencyKey" IS NULL OR (SELECT COUNT(*) FROM "Executions" r
               WHERE r."ConcurrencyKey" = q."ConcurrencyKey" AND r."Status" IN ({SlotStatuses})) < q."ConcurrencyLimit")
        ORDER BY (q."StartedAt" IS NULL), q."QueuedAt" LIMIT {ClaimWindow} FOR UPDATE OF q SKIP LOCKED
        """;

    /// <summary>The runs of this node, by their control (one execution may have a run ending and a resumed one starting).</summary>
    private readonly ConcurrentDictionary<ExecutionControl, Task> _tasks = new();
    private readonly CancellationTokenSource _grace = new();
    private readonly string _node = options.Value.ResolveNodeId();
    private static readonly SemaphoreSlim SqliteClaimGate = new(1, 1);

    public string NodeId => _node;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        stoppingToken.Register(() =>
        {
            // Stop claiming (the loop below ends), let running steps finish, start no new step; whatever still
            // runs when the grace period ends is stopped and left Interrupted for another node to resume.
            running.RequestStopAll();
            try
            {
                _grace.CancelAfter(options.Value.ShutdownGrace);
            }
            catch (ObjectDisposedException)
            {
                // The worker was disposed before it ever ran: nothing is running to give grace to.
            }
        });
        // Let the web host finish starting (and the database be migrated) before the first claim.
        await WaitForStartAsync(stoppingToken);
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await ClaimAndStartAsync(stoppingToken);
                await notifier.WaitForWorkAsync(options.Value.PollInterval, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                logger.LogError(ex, "The execution worker failed to claim work; it tries again shortly.");
                await Task.Delay(TimeSpan.FromSeconds(1), time, stoppingToken).ContinueWith(_ => { }, CancellationToken.None);
            }
        }
        // Stopped claiming; running executions finish, or are stopped when the grace period ends.
        await Task.WhenAll(_tasks.Values);
    }

    private async Task WaitForStartAsync(CancellationToken ct)
    {
        var started = new TaskCompletionSource();
        using var registration = lifetime.ApplicationStarted.Register(() => started.TrySetResult());
        await started.Task.WaitAsync(ct);
    }

    /// <summary>The most queued runs one claiming pass looks at.</summary>
    internal const int ClaimWindow = 200;

    /// <summary>One claiming pass: end what timed out, expire dead leases, then claim what fits. Public for tests and benchmarks.</summary>
    public async Task<int> ClaimAndStartAsync(CancellationToken ct)
    {
        try
        {
            await SweepTimersAsync(ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The timers are looked at again next pass; claiming must not stop because of them.
            logger.LogError(ex, "The approval and manual-step timers could not be checked; the next pass tries again.");
        }
        var passStarted = time.GetTimestamp(); // before any lease this pass gives: the fence counts from here
        var free = options.Value.MaxConcurrentExecutions - _tasks.Count; // every run still in flight, a resumed one and the end of its last run alike
        List<(Guid Id, string Lease, ExecutionEventRecord Event)> claimed;
        List<ExecutionEventRecord> interrupted;
        await using (var scope = scopes.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            var postgres = db.Database.IsNpgsql();
            if (!postgres)
                await SqliteClaimGate.WaitAsync(ct);
            try
            {
                await using var tx = await db.Database.BeginTransactionAsync(ct);
                if (postgres)
                    await db.Database.ExecuteSqlAsync($"SELECT pg_advisory_xact_lock({ClaimLockKey})", ct);
                var now = time.GetUtcNow().UtcDateTime;
                var leaseNow = await LeaseClockAsync(db, ct);

                // A node that stopped renewing its lease is gone: its run is Interrupted at the step it was in. A
                // running row without a lease was let go by a node that could not record how it ended.
                var expired = await db.Executions.Include(e => e.Steps)
                    .Where(e => (e.Status == ExecutionStatus.Running || e.Status == ExecutionStatus.RollingBack) && (e.LeaseExpiresAt == null || e.LeaseExpiresAt < leaseNow))
                    .ToListAsync(ct);
                interrupted = expired.Select(e => ExecutionLedger.Append(db, e, new HostEvent(EventKinds.ExecutionInterrupted, e.CurrentStepId,
                    new { reason = InterruptedReason(e), node = NodeOf(e.LeaseOwner), step = e.CurrentStepId }), now)).ToList();

                claimed = [];
                if (free > 0 && !ct.IsCancellationRequested)
                {
                    // The oldest queued runs that may start: a run whose concurrency key is at its limit is left out
                    // here, so any number of them waiting cannot keep a runnable run out of the window.
                    var queued = postgres
                        ? db.Executions.FromSqlRaw(ClaimSql)
                        : db.Executions.Where(e => e.Status == ExecutionStatus.Queued
                                && (e.ApprovalRequestId == null || db.ApprovalRequests.Any(a => a.Id == e.ApprovalRequestId && a.Status == ApprovalStatus.Approved))
                                && (e.ConcurrencyKey == null || db.Executions.Count(r => r.ConcurrencyKey == e.ConcurrencyKey
                                    && ExecutionLedger.HoldingASlot.Contains(r.Status)) < e.ConcurrencyLimit))
                            .OrderBy(e => e.StartedAt == null).ThenBy(e => e.QueuedAt).Take(ClaimWindow);
                    var candidates = await queued.ToListAsync(ct); // a claim touches no step
                    var keys = candidates.Where(c => c.ConcurrencyKey != null).Select(c => c.ConcurrencyKey!).Distinct().ToList();
                    var busy = keys.Count == 0 ? new Dictionary<string, int>() : await db.Executions
                        .Where(e => e.ConcurrencyKey != null && keys.Contains(e.ConcurrencyKey)
                            && ExecutionLedger.HoldingASlot.Contains(e.Status))
                        .GroupBy(e => e.ConcurrencyKey!).Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(g => g.Key, g => g.Count, ct);
                    // A run that already started (resumed, or carried on after a manual step) keeps its place before new ones.
                    foreach (var candidate in candidates.OrderBy(c => c.StartedAt == null).ThenBy(c => c.QueuedAt))
                    {
                        if (claimed.Count >= free)
                            break;
                        if (candidate.ConcurrencyKey is { } key)
                        {
                            var inUse = busy.GetValueOrDefault(key);
                            if (inUse >= candidate.ConcurrencyLimit)
                                continue; // waits in the queue, visibly Queued
                            busy[key] = inUse + 1;
                        }
                        // Stamped after the reads above: any run that ended before this claim has an earlier end time.
                        var claimedAt = time.GetUtcNow().UtcDateTime;
                        // The lease names this node and this claim: a run of this node that was taken over and then
                        // resumed here again is another claim, and the old run cannot write as the new one.
                        candidate.LeaseOwner = $"{_node}#{Guid.NewGuid():N}";
                        candidate.LeaseExpiresAt = leaseNow + options.Value.LeaseDuration;
                        candidate.CancelRequested = false;
                        candidate.RollbackStopRequestedBy = null;
                        claimed.Add((candidate.Id, candidate.LeaseOwner, ExecutionLedger.Append(db, candidate, new HostEvent(EventKinds.ExecutionClaimed, null, new { node = _node, mode = candidate.Mode.ToString() }), claimedAt)));
                    }
                }
                await db.SaveChangesAsync(ct);
                await tx.CommitAsync(ct);
            }
            finally
            {
                if (!postgres)
                    SqliteClaimGate.Release();
            }
        }

        foreach (var record in interrupted)
        {
            notifier.Publish(record);
            logger.LogWarning("Execution {Execution} was interrupted: its node stopped renewing the lease.", record.ExecutionId);
        }
        foreach (var (id, lease, record) in claimed)
        {
            notifier.Publish(record);
            var control = new ExecutionControl();
            running.Add(id, control);
            if (ct.IsCancellationRequested)
                control.RequestStop(); // claimed as the node began to stop: it ends Interrupted before its first step
            var run = new Task<Task>(() => RunClaimedAsync(id, lease, control, passStarted));
            _tasks[control] = run.Unwrap(); // registered before it starts, so its end always finds it to remove
            run.Start(TaskScheduler.Default);
        }
        return claimed.Count;
    }

    /// <summary>
    /// The portal's timers, kept in the database so they survive restarts and work across nodes: approval requests
    /// past their expiry end Expired (and their runs with them); manual steps past their timeout are aborted. Each
    /// change is conditional (concurrency tokens), so when two nodes sweep at once, one does it and the other's
    /// save is refused and forgotten.
    /// </summary>
    private async Task SweepTimersAsync(CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var audit = scope.ServiceProvider.GetRequiredService<AuditLog>();
        var now = time.GetUtcNow().UtcDateTime;

        var due = await db.ApprovalRequests.Include(a => a.Decisions)
            .Where(a => a.Status == ApprovalStatus.Pending && a.ExpiresAt != null && a.ExpiresAt <= now).OrderBy(a => a.ExpiresAt).Take(100).ToListAsync(ct);
        foreach (var request in due)
        {
            var execution = await db.Executions.FirstOrDefaultAsync(e => e.Id == request.ExecutionId, ct);
            var record = ApprovalService.ExpireInto(db, request, execution, now);
            if (!await TrySaveAsync(db, ct))
                return; // what was read is forgotten; the next pass reads it again
            if (record is not null)
                notifier.Publish(record);
            await ApprovalService.AuditExpiredAsync(audit, request, ct);
        }

        var waiting = await db.Executions.Include(e => e.Steps)
            .Where(e => e.Status == ExecutionStatus.WaitingForInput && e.InputDeadline != null && e.InputDeadline <= now && e.InputDecision == null)
            .Take(100).ToListAsync(ct);
        foreach (var execution in waiting)
        {
            var before = execution.LastSeq;
            if (execution.CancelRequested)
            {
                // Cancelled while its last step ran: the cancel wins over the timeout.
                ExecutionService.CancelWhileWaiting(db, execution, execution.CancelRequestedBy ?? "portal", execution.CancelRollback, now);
            }
            else
            {
                ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.StepInputReceived, execution.CurrentStepId, new { decision = "timedout", by = "portal", comment = (string?)null }), now);
                ExecutionLedger.Append(db, execution, new HostEvent(EventKinds.ExecutionQueued, null, new { by = "portal", input = "timedout" }), now);
            }
            var records = db.ChangeTracker.Entries<ExecutionEventRecord>().Where(e => e.State == EntityState.Added && e.Entity.ExecutionId == execution.Id && e.Entity.Seq > before)
                .Select(e => e.Entity).ToList();
            if (!await TrySaveAsync(db, ct))
                return;
            foreach (var record in records)
                notifier.Publish(record);
            notifier.WorkQueued();
        }
    }

    /// <summary>Saves one timer's change; one that lost to another writer is forgotten (the next pass looks again).</summary>
    private async Task<bool> TrySaveAsync(PortalDbContext db, CancellationToken ct)
    {
        try
        {
            await db.SaveChangesAsync(ct);
            return true;
        }
        catch (DbUpdateException ex)
        {
            logger.LogDebug(ex, "A timer's change lost to another writer; the next pass looks again.");
            db.ChangeTracker.Clear();
            return false;
        }
    }

    private async Task RunClaimedAsync(Guid id, string lease, ExecutionControl control, long leasedAt)
    {
        using var heartbeatStop = new CancellationTokenSource();
        // Fenced: this node no longer holds the lease, or cannot tell that it does. Nothing more is recorded.
        using var fenced = new CancellationTokenSource();
        // Cancelled when fenced or when the shutdown grace ends: the running step is stopped (SIGTERM, grace, SIGKILL).
        using var leaseLost = CancellationTokenSource.CreateLinkedTokenSource(_grace.Token, fenced.Token);
        var heartbeat = HeartbeatAsync(id, lease, control, leasedAt, fenced, heartbeatStop.Token);
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            var services = scope.ServiceProvider;
            var db = services.GetRequiredService<PortalDbContext>();
            var execution = await db.Executions.AsNoTracking().Include(e => e.Steps).FirstAsync(e => e.Id == id);
            // The claim checked the gate; this checks again that what was approved is exactly what runs.
            var approval = execution.ApprovalRequestId is { } approvalId ? await db.ApprovalRequests.AsNoTracking().FirstOrDefaultAsync(a => a.Id == approvalId) : null;
            var version = await db.RunbookVersions.AsNoTracking().FirstAsync(v => v.Id == execution.RunbookVersionId);
            var definition = RunbookValidator.Validate(version.Yaml).Definition
                ?? throw new InvalidOperationException($"Version {execution.Version} of {execution.RunbookName} no longer validates.");
            if (!ApprovalService.Passed(execution, approval, definition))
                throw new InvalidOperationException("it did not pass its approval (none was granted for this run, its version and these values); nothing of it ran");
            var parameters = JsonSerializer.Deserialize<Dictionary<string, string>>(execution.ParametersJson, ExecutionLedger.Json) ?? [];
            if (execution.ProtectedSecrets is { } protectedSecrets)
            {
                var secrets = JsonSerializer.Deserialize<Dictionary<string, string>>(
                    services.GetRequiredService<IDataProtectionProvider>().CreateProtector(ExecutionService.SecretsPurpose).Unprotect(protectedSecrets)) ?? [];
                foreach (var (k, v) in secrets)
                    parameters[k] = v;
            }
            // from: ssm:/path secrets are read now, at each start (a resume and a rollback too), and only ever held in the plan.
            if (!execution.DryRun && ParameterStoreSecrets.AnyIn(definition))
            {
                foreach (var (k, v) in await ParameterStoreSecrets.FetchAsync(services.GetRequiredService<Amazon.SimpleSystemsManagement.IAmazonSimpleSystemsManagement>(), definition, fenced.Token))
                    parameters[k] = v;
            }
            var succeeded = execution.Steps.Where(s => s.SucceededOrder != null).OrderBy(s => s.SucceededOrder).ToList();
            var outputs = services.GetRequiredService<IDataProtectionProvider>().CreateProtector(DatabaseExecutionJournal.OutputsPurpose);
            var plan = new ExecutionPlan(id, definition, parameters, execution.DryRun, execution.StartAt,
                succeeded.Where(s => s.OutputsJson != null || s.ProtectedOutputs != null).ToDictionary(s => s.StepId, s => PriorOutputs(s, outputs)),
                succeeded.Select(s => s.StepId).ToList(),
                ExecutionService.InputOf(execution));

            await using var journal = new DatabaseExecutionJournal(services.GetRequiredService<PortalDbContext>(), id, notifier, time, lease, outputs, fenced.Token);
            var runner = services.GetRequiredService<ExecutionRunner>();
            var outcome = execution.Mode == ExecutionMode.Rollback
                ? await runner.RollbackAsync(plan, plan.PriorSucceeded ?? [], journal, leaseLost.Token, control)
                : await runner.RunAsync(plan, journal, control, leaseLost.Token);
            logger.LogInformation("Execution {Execution} of {Runbook} v{Version} ended {Status}.", id, execution.RunbookName, execution.Version, outcome.Status);
        }
        catch (LeaseLostException)
        {
            logger.LogWarning("Execution {Execution}: this node lost its lease and stopped the run; the node that took it over records what follows.", id);
        }
        catch (Exception ex) when (!fenced.IsCancellationRequested)
        {
            logger.LogError(ex, "Execution {Execution} failed in the host.", id);
            await RecordHostFailureAsync(id, lease, ex, fenced.Token);
        }
        catch (Exception ex)
        {
            logger.LogWarning(ex, "Execution {Execution}: this node was fenced off (see above) and records nothing more of it.", id);
        }
        finally
        {
            await heartbeatStop.CancelAsync();
            await heartbeat;
            try
            {
                if (!fenced.IsCancellationRequested) // a fenced node writes nothing; its lease expires by itself
                    await ReleaseAsync(id, lease);
            }
            catch (Exception ex)
            {
                logger.LogWarning(ex, "Execution {Execution}: this node could not let go of its lease; it expires by itself.", id);
            }
            finally
            {
                running.Remove(id, control);
                _tasks.TryRemove(control, out _);
                control.Dispose();
                notifier.WorkQueued(); // a slot is free, and a concurrency key may be too
            }
        }
    }

    /// <summary>
    /// An earlier step's outputs for a resumed run: as produced (decrypted), so a value that held a secret is the
    /// secret again, not its mask; the masked ones only for a run recorded before outputs were stored encrypted.
    /// </summary>
    private static IReadOnlyDictionary<string, string> PriorOutputs(ExecutionStepRecord step, IDataProtector protector)
    {
        var json = step.ProtectedOutputs is { } sealedOutputs ? protector.Unprotect(sealedOutputs) : step.OutputsJson!;
        return JsonSerializer.Deserialize<Dictionary<string, string>>(json) ?? [];
    }

    /// <summary>
    /// Renews the lease every <see cref="EngineOptions.HeartbeatInterval"/> and picks up a cancel (or a stop of the
    /// rollback) requested on another node. Fencing: when the lease is another claim's, or could not be renewed for
    /// <see cref="EngineOptions.FenceAfter"/> (the database unreachable, or too slow to answer), <paramref name="fenced"/>
    /// is cancelled — the step is stopped and nothing more is recorded — before the lease expires by the database's
    /// clock and another node may take the run over.
    /// </summary>
    private async Task HeartbeatAsync(Guid id, string lease, ExecutionControl control, long renewedAt, CancellationTokenSource fenced, CancellationToken stop)
    {
        var o = options.Value;
        while (!stop.IsCancellationRequested)
        {
            var left = o.FenceAfter - time.GetElapsedTime(renewedAt);
            if (left <= TimeSpan.Zero)
            {
                logger.LogError("Execution {Execution}: this node could not renew its lease for {Elapsed}; it stops the step here and records nothing more. Another node takes the run over once the lease expires.",
                    id, time.GetElapsedTime(renewedAt));
                await fenced.CancelAsync();
                return;
            }
            try
            {
                await Task.Delay(left < o.HeartbeatInterval ? left : o.HeartbeatInterval, time, stop);
                left = o.FenceAfter - time.GetElapsedTime(renewedAt);
                if (left <= TimeSpan.Zero)
                    continue;
                var attempt = time.GetTimestamp();
                // A renewal that does not answer in time is as good as none: it is cancelled (so that a late answer does
                // not extend the lease), and not waited for — a driver may take long to give up on a silent connection.
                using var inTime = CancellationTokenSource.CreateLinkedTokenSource(stop);
                inTime.CancelAfter(left);
                var renewal = RenewAsync(id, lease, inTime.Token);
                Requests? requests;
                try
                {
                    requests = await renewal.WaitAsync(left, time, stop);
                }
                catch (Exception ex) when (ex is TimeoutException or OperationCanceledException && !stop.IsCancellationRequested)
                {
                    await inTime.CancelAsync(); // the wait may have timed out just before the renewal's own deadline
                    _ = renewal.ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
                    logger.LogWarning("Heartbeat of execution {Execution}: the database did not answer the renewal in time.", id);
                    continue; // the fence is checked at the top of the loop
                }
                if (requests is null)
                {
                    logger.LogWarning("Execution {Execution}: this node lost its lease; stopping the run here.", id);
                    await fenced.CancelAsync();
                    return;
                }
                renewedAt = attempt;
                if (requests.CancelRequested && !control.CancelToken.IsCancellationRequested)
                    control.Cancel(requests.CancelRequestedBy ?? "operator", requests.CancelRollback);
                if (requests.RollbackStopRequestedBy is { } stopper && !control.RollbackStopToken.IsCancellationRequested)
                    control.StopRollback(stopper);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // One failed renewal must not end the heartbeat: it tries again until the fence.
                logger.LogError(ex, "Heartbeat of execution {Execution} failed; it tries again at the next beat.", id);
            }
        }
    }

    private sealed record Requests(bool CancelRequested, bool CancelRollback, string? CancelRequestedBy, string? RollbackStopRequestedBy);

    /// <summary>Extends the lease of this claim by the database's clock; null when the lease is not this claim's.</summary>
    private async Task<Requests?> RenewAsync(Guid id, string lease, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var until = await LeaseClockAsync(db, ct) + options.Value.LeaseDuration;
        if (await db.Executions.Where(e => e.Id == id && e.LeaseOwner == lease).ExecuteUpdateAsync(s => s.SetProperty(e => e.LeaseExpiresAt, until), ct) == 0)
            return null;
        return await db.Executions.AsNoTracking().Where(e => e.Id == id)
            .Select(e => new Requests(e.CancelRequested, e.CancelRollback, e.CancelRequestedBy, e.RollbackStopRequestedBy)).FirstAsync(ct);
    }

    /// <summary>
    /// The clock leases are given and expired by, the same for every node: PostgreSQL's clock (<c>clock_timestamp()</c>:
    /// now, not the transaction's start); with SQLite, whose
    /// one writer is this machine, this machine's clock.
    /// </summary>
    private async Task<DateTime> LeaseClockAsync(PortalDbContext db, CancellationToken ct) =>
        db.Database.IsNpgsql()
            ? (await db.Database.SqlQuery<DateTime>($"SELECT clock_timestamp() AS \"Value\"").ToListAsync(ct))[0] // not Single: its Take(2) is logged as a warning
            : time.GetUtcNow().UtcDateTime;

    private static string InterruptedReason(Execution execution)
    {
        var where = execution.CurrentStepId is { } step ? $" while running step '{step}'" : "";
        return NodeOf(execution.LeaseOwner) is { } node
            ? $"Node {node} stopped renewing its lease{where}."
            : $"The node running it let it go{where} without recording how it ended.";
    }

    /// <summary>The node of a lease (<c>node#claim</c>).</summary>
    private static string? NodeOf(string? lease) => lease is null ? null : lease[..(lease.LastIndexOf('#') is var hash and >= 0 ? hash : lease.Length)];

    private async Task ReleaseAsync(Guid id, string lease)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        // Only once the run's end is recorded: a run still Running here (its end could not be recorded) keeps its lease
        // until it expires and another claim pass interrupts it; and a resumed run this node has claimed again keeps
        // the lease it was just given.
        await db.Executions.Where(e => e.Id == id && e.LeaseOwner == lease
                && e.Status != ExecutionStatus.Running && e.Status != ExecutionStatus.RollingBack)
            .ExecuteUpdateAsync(s => s.SetProperty(e => e.LeaseOwner, (string?)null).SetProperty(e => e.LeaseExpiresAt, (DateTime?)null));
    }

    private async Task RecordHostFailureAsync(Guid id, string lease, Exception ex, CancellationToken fenced)
    {
        try
        {
            await using var scope = scopes.CreateAsyncScope();
            await using var journal = new DatabaseExecutionJournal(scope.ServiceProvider.GetRequiredService<PortalDbContext>(), id, notifier, time, lease, fenced: fenced);
            await journal.RecordAsync(new ExecutionFinished(ExecutionStatus.Failed, null, $"The portal could not run this execution: {ex.GetBaseException().Message}", RolledBack: false), CancellationToken.None);
        }
        catch (LeaseLostException)
        {
            logger.LogWarning("Execution {Execution}: its failure here is not recorded; another node has taken it over.", id);
        }
        catch (Exception inner)
        {
            logger.LogError(inner, "Could not record the failure of execution {Execution}.", id);
        }
    }

    /// <remarks>
    /// The grace source lives until the worker is disposed, not just stopped: ExecuteAsync runs on its own task, so its
    /// stopping callback (which arms the grace period) can fire after StopAsync has returned.
    /// </remarks>
    public override void Dispose()
    {
        base.Dispose();
        _grace.Dispose();
        GC.SuppressFinalize(this);
    }
}
