namespace RunbookPortal.Web.Data;

public enum RunbookVersionStatus
{
    Draft,
    InReview,
    Active,
    Superseded,
    Deprecated,
    Archived,
}

public enum ArchiveState
{
    /// <summary>No S3 archive configured when it was published, or not published.</summary>
    None,
    Pending,
    Stored,
    Failed,
}

/// <summary>
/// A runbook: its immutable name plus a copy of the catalog facts of its current version (the Active one,
/// else the latest), kept so the catalog searches one table.
/// </summary>
public sealed class Runbook
{
    public Guid Id { get; set; }
    public required string Name { get; set; }
    public required string Title { get; set; }
    public string? Description { get; set; }
    public required string Type { get; set; }
    public string? Owner { get; set; }

    /// <summary>Tags joined as "|a|b|" so one LIKE finds a whole tag.</summary>
    public string Tags { get; set; } = "|";

    /// <summary>Lower-cased name, title, description and tags, for the full-text search.</summary>
    public string SearchText { get; set; } = "";
    public RunbookVersionStatus Status { get; set; }
    public int LatestVersion { get; set; }
    public int? ActiveVersion { get; set; }
    public DateTime CreatedAt { get; set; }
    public required string CreatedBy { get; set; }
    public DateTime UpdatedAt { get; set; }
    public List<RunbookVersion> Versions { get; set; } = [];

    /// <summary>One row per tag, for the tag filter and facet.</summary>
    public List<RunbookTag> TagLinks { get; set; } = [];
}

public sealed class RunbookTag
{
    public Guid RunbookId { get; set; }
    public required string Tag { get; set; }
}

/// <summary>One numbered version of a runbook's YAML. Immutable once submitted.</summary>
public sealed class RunbookVersion
{
    public Guid Id { get; set; }
    public Guid RunbookId { get; set; }
    public Runbook? Runbook { get; set; }
    public int Version { get; set; }
    public required string Yaml { get; set; }
    public RunbookVersionStatus Status { get; set; }
    public required string Author { get; set; }

    /// <summary>Everyone who saved a revision of this version, as "|a@x|b@y|" (lower case); none of them may approve it.</summary>
    public string Contributors { get; set; } = "|";
    public DateTime CreatedAt { get; set; }
    public DateTime UpdatedAt { get; set; }
    public string? ReviewedBy { get; set; }
    public DateTime? PublishedAt { get; set; }
    public ArchiveState ArchiveState { get; set; }
    public string? ArchiveError { get; set; }
    public int ArchiveAttempts { get; set; }
    public DateTime? ArchiveNextAttemptAt { get; set; }
    public List<RunbookVersionTransition> Transitions { get; set; } = [];
}

/// <summary>Append-only lifecycle history of a version: who moved it where, when, and why.</summary>
public sealed class RunbookVersionTransition
{
    public long Id { get; set; }
    public Guid RunbookVersionId { get; set; }
    public DateTime At { get; set; }
    public required string Actor { get; set; }
    public required string Action { get; set; }
    public RunbookVersionStatus From { get; set; }
    public RunbookVersionStatus To { get; set; }
    public string? Comment { get; set; }
}
