namespace RunbookPortal.Web.Data;

public enum ApprovalStatus
{
    Pending,
    Approved,
    Rejected,
    Expired,

    /// <summary>The run was cancelled while it waited: final, the run can never be resumed.</summary>
    Cancelled,
}

/// <summary>
/// The sign-off an execution waits for: bound to its exact runbook version and a hash of its parameter values,
/// with the decisions taken on it. <see cref="Revision"/> is a concurrency token: every decision changes it, so two
/// approvers acting at once cannot both read the same count and neither (or both) queue the run.
/// </summary>
public sealed class ApprovalRequest
{
    public Guid Id { get; set; }
    public Guid ExecutionId { get; set; }
    public Guid RunbookVersionId { get; set; }
    public required string RunbookName { get; set; }
    public int Version { get; set; }
    public required string RequestedBy { get; set; }
    public DateTime RequestedAt { get; set; }
    public string? RequestComment { get; set; }
    public int RequiredApprovals { get; set; }
    public required string ApproverRole { get; set; }

    /// <summary>The <c>approval.when</c> conditions that matched, as JSON (an empty object: always).</summary>
    public required string ConditionsJson { get; set; }

    /// <summary>SHA-256 of the execution's parameters and sealed secrets when it was requested.</summary>
    public required string ParametersHash { get; set; }
    public DateTime? ExpiresAt { get; set; }
    public ApprovalStatus Status { get; set; }
    public DateTime? DecidedAt { get; set; }
    public int Revision { get; set; }
    public List<ApprovalDecision> Decisions { get; set; } = [];
}

/// <summary>One person's decision on a request; one per person (a unique index), so approving twice counts once.</summary>
public sealed class ApprovalDecision
{
    public long Id { get; set; }
    public Guid ApprovalRequestId { get; set; }
    public required string By { get; set; }
    public DateTime At { get; set; }
    public bool Approved { get; set; }
    public string? Comment { get; set; }
}
