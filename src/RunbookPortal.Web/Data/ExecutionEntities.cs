using RunbookPortal.Engine.Execution;

namespace RunbookPortal.Web.Data;

/// <summary>What the worker does when it claims an execution.</summary>
public enum ExecutionMode
{
    Run,
    Rollback,
}

/// <summary>
/// One execution of a pinned runbook version. The row is the queue entry, the lease and the state; its
/// events (<see cref="ExecutionEventRecord"/>) are the ordered history.
/// </summary>
public sealed class Execution
{
    public Guid Id { get; set; }
    public Guid RunbookVersionId { get; set; }
    public required string RunbookName { get; set; }
    public int Version { get; set; }
    public ExecutionStatus Status { get; set; }
    public ExecutionMode Mode { get; set; }
    public bool DryRun { get; set; }
    public required string RequestedBy { get; set; }
    public DateTime RequestedAt { get; set; }
    public DateTime? QueuedAt { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }

    /// <summary>Parameter values as JSON, secrets replaced by "***".</summary>
    public required string ParametersJson { get; set; }

    /// <summary>The secret values, encrypted with the portal's data-protection keys; never shown.</summary>
    public string? ProtectedSecrets { get; set; }

    /// <summary>
    /// The <c>Idempotency-Key</c> the requester sent with the start: for 24 hours the same key from the same requester
    /// answers this execution instead of starting another (unique per requester). Null without a key, and once a later
    /// start took over the key after those 24 hours.
    /// </summary>
    public string? IdempotencyKey { get; set; }
    public const int MaxIdempotencyKeyLength = 200;

    /// <summary>The rendered concurrency key and its limit; null when the runbook has none.</summary>
    public string? ConcurrencyKey { get; set; }
    public int ConcurrencyLimit { get; set; }

    public int StartAt { get; set; }
    public string? CurrentStepId { get; set; }
    public string? FailedStepId { get; set; }
    public string? Reason { get; set; }
    public bool RolledBack { get; set; }

    public string? LeaseOwner { get; set; }
    public DateTime? LeaseExpiresAt { get; set; }

    /// <summary>The approval this run waits for or passed; null when it needed none. The worker claims a gated run only once it is Approved.</summary>
    public Guid? ApprovalRequestId { get; set; }

    /// <summary>A manual step waiting for a person: who may decide (a role) and until when.</summary>
    public string? InputRole { get; set; }
    public DateTime? InputDeadline { get; set; }

    /// <summary>The decision taken on the manual step <see cref="InputStepId"/> (continue, abort, timedout), for the run that carries on.</summary>
    public string? InputStepId { get; set; }
    public string? InputDecision { get; set; }
    public string? InputBy { get; set; }
    public string? InputComment { get; set; }

    public bool CancelRequested { get; set; }
    public bool CancelRollback { get; set; }
    public string? CancelRequestedBy { get; set; }

    /// <summary>Who stopped the rollback under way (a second cancel); null while no one did.</summary>
    public string? RollbackStopRequestedBy { get; set; }

    /// <summary>The seq of the last event: the next one is LastSeq + 1, in the same transaction (a concurrency token).</summary>
    public long LastSeq { get; set; }

    public List<ExecutionStepRecord> Steps { get; set; } = [];
}

public sealed class ExecutionStepRecord
{
    public Guid ExecutionId { get; set; }
    public required string StepId { get; set; }
    public int Index { get; set; }
    public required string Name { get; set; }
    public required string Action { get; set; }
    public bool HasRollback { get; set; }
    public StepStatus Status { get; set; }
    public int Attempts { get; set; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }

    /// <summary>Captured outputs as JSON (masked), as shown.</summary>
    public string? OutputsJson { get; set; }

    /// <summary>The outputs as produced (secrets unmasked), as JSON encrypted by data protection: what a resumed run's later steps receive.</summary>
    public string? ProtectedOutputs { get; set; }

    /// <summary>When this step succeeded in the run (its rank), for the reverse-order rollback after a resume.</summary>
    public int? SucceededOrder { get; set; }
    public string? Error { get; set; }
}

/// <summary>One execution event: gap-free, increasing seq per execution.</summary>
public sealed class ExecutionEventRecord
{
    public long Id { get; set; }
    public Guid ExecutionId { get; set; }
    public long Seq { get; set; }
    public DateTime At { get; set; }
    public required string Kind { get; set; }
    public string? StepId { get; set; }
    public required string DataJson { get; set; }
}
