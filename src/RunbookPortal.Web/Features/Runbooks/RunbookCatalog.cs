using Microsoft.EntityFrameworkCore;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Audit;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Runbooks;

public enum LifecycleAction
{
    Submit,
    Approve,
    Reject,
    Deprecate,
    Archive,
}

public sealed record CatalogQuery(
    string? Search = null,
    string? Type = null,
    string? Tag = null,
    RunbookVersionStatus? Status = null,
    string? Owner = null,
    string Sort = "name",
    bool Descending = false,
    int Page = 0,
    int PageSize = 25);

public sealed record CatalogItem(string Name, string Title, string? Description, string Type, IReadOnlyList<string> Tags, string? Owner,
    RunbookVersionStatus Status, int LatestVersion, int? ActiveVersion, DateTime UpdatedAt);

public sealed record FacetValue(string Value, int Count);

public sealed record CatalogFacets(IReadOnlyList<FacetValue> Types, IReadOnlyList<FacetValue> Tags, IReadOnlyList<FacetValue> Statuses, IReadOnlyList<FacetValue> Owners);

public sealed record CatalogPage(IReadOnlyList<CatalogItem> Items, int Total, CatalogFacets Facets);

public sealed record VersionSummary(int Version, RunbookVersionStatus Status, string Author, DateTime CreatedAt, DateTime UpdatedAt, string? ReviewedBy,
    DateTime? PublishedAt, ArchiveState ArchiveState, string? ArchiveError);

public sealed record TransitionView(int Version, DateTime At, string Actor, string Action, RunbookVersionStatus From, RunbookVersionStatus To, string? Comment);

public sealed record RunbookDetails(CatalogItem Runbook, IReadOnlyList<VersionSummary> Versions, IReadOnlyList<TransitionView> History);

public sealed record VersionDetails(string Name, VersionSummary Summary, string Yaml);

/// <summary>What saving YAML answered: the version it became, or why not (with the validator's diagnostics).</summary>
public sealed record RunbookSaveResult(OperationResult Outcome, string? Name, int? Version, IReadOnlyList<RunbookDiagnostic> Diagnostics)
{
    public bool Succeeded => Outcome.Succeeded;
}

/// <summary>The runbook catalog and its version lifecycle, for pages and API alike.</summary>
public sealed class RunbookCatalog(PortalDbContext db, AuditLog audit, TimeProvider time, RunbookArchiveQueue archive)
{
    /// <summary>One page of the catalog with its facets, in three queries: the facet counts, the tag counts, the page.</summary>
    public async Task<CatalogPage> SearchAsync(CatalogQuery q, CancellationToken ct = default)
    {
        var runbooks = db.Runbooks.AsNoTracking();
        foreach (var term in (q.Search ?? "").ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Take(8))
        {
            var pattern = "%" + term.Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
            runbooks = runbooks.Where(r => EF.Functions.Like(r.SearchText, pattern, "\\"));
        }
        if (!string.IsNullOrWhiteSpace(q.Type))
            runbooks = runbooks.Where(r => r.Type == q.Type);
        if (!string.IsNullOrWhiteSpace(q.Tag))
        {
            var tag = q.Tag.Trim().ToLowerInvariant();
            runbooks = runbooks.Where(r => r.TagLinks.Any(t => t.Tag == tag));
        }
        if (q.Status is { } status)
            runbooks = runbooks.Where(r => r.Status == status);
        if (!string.IsNullOrWhiteSpace(q.Owner))
            runbooks = runbooks.Where(r => r.Owner == q.Owner);

        var groups = await runbooks.GroupBy(r => new { r.Type, r.Status, r.Owner })
            .Select(g => new { g.Key.Type, g.Key.Status, g.Key.Owner, Count = g.Count() }).ToListAsync(ct);
        var total = groups.Sum(g => g.Count);
        var tags = (await db.RunbookTags.Where(t => runbooks.Any(r => r.Id == t.RunbookId))
            .GroupBy(t => t.Tag).Select(g => new { Tag = g.Key, Count = g.Count() })
            .OrderByDescending(f => f.Count).ThenBy(f => f.Tag).Take(50).ToListAsync(ct))
            .Select(f => new FacetValue(f.Tag, f.Count)).ToList();

        var sorted = (q.Sort.ToLowerInvariant(), q.Descending) switch
        {
            ("title", false) => runbooks.OrderBy(r => r.Title).ThenBy(r => r.Name),
            ("title", true) => runbooks.OrderByDescending(r => r.Title).ThenBy(r => r.Name),
            ("updated", false) => runbooks.OrderBy(r => r.UpdatedAt).ThenBy(r => r.Name),
            ("updated", true) => runbooks.OrderByDescending(r => r.UpdatedAt).ThenBy(r => r.Name),
            ("type", false) => runbooks.OrderBy(r => r.Type).ThenBy(r => r.Name),
            ("type", true) => runbooks.OrderByDescending(r => r.Type).ThenBy(r => r.Name),
            (_, true) => runbooks.OrderByDescending(r => r.Name),
            _ => runbooks.OrderBy(r => r.Name),
        };
        var rows = total == 0 ? [] : await sorted.Page(q.Page, q.PageSize).ToListAsync(ct);

        static List<FacetValue> Facet<TKey>(IEnumerable<IGrouping<TKey, int>> source, Func<TKey, string> label) =>
            source.Select(g => new FacetValue(label(g.Key), g.Sum())).OrderBy(f => f.Value, StringComparer.Ordinal).ToList();

        return new CatalogPage(
            rows.Select(ToItem).ToList(),
            total,
            new CatalogFacets(
                Facet(groups.GroupBy(g => g.Type, g => g.Count), t => t),
                tags,
                Facet(groups.GroupBy(g => g.Status, g => g.Count), s => s.ToString()),
                Facet(groups.Where(g => g.Owner != null).GroupBy(g => g.Owner!, g => g.Count), o => o)));
    }

    public async Task<RunbookDetails?> GetAsync(string name, CancellationToken ct = default)
    {
        var runbook = await db.Runbooks.AsNoTracking().Include(r => r.Versions).ThenInclude(v => v.Transitions)
            .AsSplitQuery().FirstOrDefaultAsync(r => r.Name == name, ct);
        if (runbook is null)
            return null;
        var versions = runbook.Versions.OrderByDescending(v => v.Version).ToList();
        var history = versions.SelectMany(v => v.Transitions.Select(t => new TransitionView(v.Version, t.At, t.Actor, t.Action, t.From, t.To, t.Comment)))
            .OrderByDescending(t => t.At).ToList();
        return new RunbookDetails(ToItem(runbook), versions.Select(ToSummary).ToList(), history);
    }

    public async Task<VersionDetails?> GetVersionAsync(string name, int version, CancellationToken ct = default)
    {
        var v = await db.RunbookVersions.AsNoTracking().Include(x => x.Runbook)
            .FirstOrDefaultAsync(x => x.Runbook!.Name == name && x.Version == version, ct);
        return v is null ? null : new VersionDetails(name, ToSummary(v), v.Yaml);
    }

    /// <summary>Creates a runbook from YAML: its first version, a Draft.</summary>
    public async Task<RunbookSaveResult> CreateAsync(string actor, string yaml, CancellationToken ct = default)
    {
        var validation = RunbookValidator.Validate(yaml);
        if (!validation.IsValid)
            return Invalid(validation);
        var definition = validation.Definition!;
        if (await db.Runbooks.AnyAsync(r => r.Name == definition.Name, ct))
            return new RunbookSaveResult(OperationResult.Conflict($"A runbook named '{definition.Name}' already exists. Choose another name, or save a new version of it."), definition.Name, null, validation.Diagnostics);

        var now = time.GetUtcNow().UtcDateTime;
        var runbook = new Runbook { Id = Guid.NewGuid(), Name = definition.Name, Title = definition.Title, Type = definition.Type, CreatedAt = now, CreatedBy = actor };
        var version = NewVersion(runbook, 1, yaml, actor, now);
        runbook.Versions.Add(version);
        RefreshSummary(runbook, now, (version, definition));
        db.Runbooks.Add(runbook);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateException)
        {
            return new RunbookSaveResult(OperationResult.Conflict($"A runbook named '{definition.Name}' already exists."), definition.Name, null, validation.Diagnostics);
        }
        await audit.WriteAsync(actor, "runbook.created", $"{runbook.Name} v1", new { title = runbook.Title }, ct);
        return new RunbookSaveResult(OperationResult.Ok, runbook.Name, 1, validation.Diagnostics);
    }

    /// <summary>Imports one uploaded file as a new runbook, reporting the outcome for that file alone.</summary>
    public async Task<ImportFileResult> ImportAsync(string actor, string fileName, string yaml, CancellationToken ct = default)
    {
        if (!fileName.EndsWith(".yaml", StringComparison.OrdinalIgnoreCase) && !fileName.EndsWith(".yml", StringComparison.OrdinalIgnoreCase))
            return ImportFileResult.Refused(fileName, "Only .yaml or .yml files can be imported.");
        var saved = await CreateAsync(actor, yaml, ct);
        return new ImportFileResult(fileName, saved.Succeeded, saved.Name, saved.Version, saved.Succeeded ? null : saved.Outcome.Message,
            saved.Diagnostics.Select(DiagnosticDto.From).ToList());
    }

    /// <summary>
    /// Saves YAML as the runbook's draft: the latest version while it is still a Draft, otherwise a new
    /// version (published versions are never changed).
    /// </summary>
    public async Task<RunbookSaveResult> SaveDraftAsync(string actor, string name, string yaml, CancellationToken ct = default)
    {
        var runbook = await db.Runbooks.Include(r => r.Versions).Include(r => r.TagLinks).AsSplitQuery().FirstOrDefaultAsync(r => r.Name == name, ct);
        if (runbook is null)
            return new RunbookSaveResult(OperationResult.NotFound($"There is no runbook named '{name}'."), name, null, []);
        var validation = RunbookValidator.Validate(yaml);
        if (!validation.IsValid)
            return Invalid(validation);
        var definition = validation.Definition!;
        if (definition.Name != name)
            return new RunbookSaveResult(OperationResult.Invalid($"The YAML names the runbook '{definition.Name}', but this is '{name}'. A runbook's name cannot change; create a new runbook instead."), name, null, validation.Diagnostics);

        var now = time.GetUtcNow().UtcDateTime;
        var latest = runbook.Versions.MaxBy(v => v.Version)!;
        RunbookVersion target;
        if (latest.Status == RunbookVersionStatus.Draft)
        {
            if (latest.Yaml == yaml)
                return new RunbookSaveResult(OperationResult.Ok, name, latest.Version, validation.Diagnostics);
            latest.Yaml = yaml;
            latest.UpdatedAt = now;
            latest.Author = actor;
            latest.Contributors = WithContributor(latest.Contributors, actor);
            target = latest;
        }
        else if (latest.Status == RunbookVersionStatus.InReview)
        {
            return new RunbookSaveResult(OperationResult.Conflict($"Version {latest.Version} is in review. Wait for the review, or have it rejected, before saving new changes."), name, latest.Version, validation.Diagnostics);
        }
        else
        {
            target = NewVersion(runbook, latest.Version + 1, yaml, actor, now);
            runbook.Versions.Add(target);
            db.RunbookVersions.Add(target);
        }
        RefreshSummary(runbook, now, (target, definition));
        await db.SaveChangesAsync(ct);
        await audit.WriteAsync(actor, "runbook.draft-saved", $"{name} v{target.Version}", null, ct);
        return new RunbookSaveResult(OperationResult.Ok, name, target.Version, validation.Diagnostics);
    }

    /// <summary>Moves a version through its lifecycle. <paramref name="canReview"/>: the actor is an Author or Admin.</summary>
    public async Task<OperationResult> TransitionAsync(string actor, bool canReview, string name, int version, LifecycleAction action, string? comment, CancellationToken ct = default)
    {
        var runbook = await db.Runbooks.Include(r => r.Versions).Include(r => r.TagLinks).AsSplitQuery().FirstOrDefaultAsync(r => r.Name == name, ct);
        var target = runbook?.Versions.FirstOrDefault(v => v.Version == version);
        if (runbook is null || target is null)
            return OperationResult.NotFound(runbook is null ? $"There is no runbook named '{name}'." : $"Runbook '{name}' has no version {version}.");
        comment = string.IsNullOrWhiteSpace(comment) ? null : comment.Trim();
        if (comment is { Length: > 2000 })
            return OperationResult.Invalid("A comment has at most 2000 characters.");

        var from = target.Status;
        RunbookVersionStatus to;
        switch (action)
        {
            case LifecycleAction.Submit when from == RunbookVersionStatus.Draft:
                to = RunbookVersionStatus.InReview;
                break;
            case LifecycleAction.Approve when from == RunbookVersionStatus.InReview:
                if (!canReview)
                    return OperationResult.Forbidden("Only an Author or an Admin can approve a runbook version.");
                if (string.Equals(target.Author, actor, StringComparison.OrdinalIgnoreCase) || IsContributor(target.Contributors, actor))
                    return OperationResult.Forbidden($"You saved a revision of version {version}; another Author or Admin, who saved none of it, must review and approve it.");
                to = RunbookVersionStatus.Active;
                break;
            case LifecycleAction.Reject when from == RunbookVersionStatus.InReview:
                if (!canReview)
                    return OperationResult.Forbidden("Only an Author or an Admin can reject a runbook version.");
                if (comment is null)
                    return OperationResult.Invalid("Say why the version is rejected: a comment is required.");
                to = RunbookVersionStatus.Draft;
                break;
            case LifecycleAction.Deprecate when from == RunbookVersionStatus.Active:
                to = RunbookVersionStatus.Deprecated;
                break;
            case LifecycleAction.Archive when from is RunbookVersionStatus.Deprecated or RunbookVersionStatus.Superseded or RunbookVersionStatus.Draft:
                to = RunbookVersionStatus.Archived;
                break;
            default:
                return OperationResult.Conflict($"Version {version} is {Describe(from)}; it cannot be {Past(action)}. {Allowed(from)}");
        }

        var now = time.GetUtcNow().UtcDateTime;
        if (to == RunbookVersionStatus.Active)
        {
            foreach (var previous in runbook.Versions.Where(v => v.Status == RunbookVersionStatus.Active))
            {
                previous.Status = RunbookVersionStatus.Superseded;
                previous.UpdatedAt = now;
                previous.Transitions.Add(new RunbookVersionTransition { At = now, Actor = actor, Action = "supersede", From = RunbookVersionStatus.Active, To = RunbookVersionStatus.Superseded, Comment = $"Replaced by version {version}." });
            }
            // The superseded row must leave Active before the new one enters it (the one-Active index).
            await db.SaveChangesAsync(ct);
            target.ReviewedBy = actor;
            target.PublishedAt = now;
            archive.MarkPending(target);
        }
        target.Status = to;
        target.UpdatedAt = now;
        target.Transitions.Add(new RunbookVersionTransition { At = now, Actor = actor, Action = action.ToString().ToLowerInvariant(), From = from, To = to, Comment = comment });
        RefreshSummary(runbook, now);
        try
        {
            await db.SaveChangesAsync(ct);
        }
        catch (DbUpdateConcurrencyException)
        {
            return OperationResult.Conflict("The runbook changed while you were acting on it; reload and try again.");
        }
        catch (DbUpdateException)
        {
            return OperationResult.Conflict("Another version became active at the same time; reload and try again.");
        }
        await audit.WriteAsync(actor, "runbook." + Past(action), $"{name} v{version}", new { from = from.ToString(), to = to.ToString(), comment }, ct);
        if (to == RunbookVersionStatus.Active)
            archive.Notify();
        return OperationResult.Ok;
    }

    private static RunbookVersion NewVersion(Runbook runbook, int number, string yaml, string actor, DateTime now) => new()
    {
        Id = Guid.NewGuid(),
        RunbookId = runbook.Id,
        Version = number,
        Yaml = yaml,
        Status = RunbookVersionStatus.Draft,
        Author = actor,
        Contributors = WithContributor("|", actor),
        CreatedAt = now,
        UpdatedAt = now,
    };

    /// <summary>Everyone who saved a revision of a version, as "|a|b|", lower case.</summary>
    internal static string WithContributor(string contributors, string actor) =>
        IsContributor(contributors, actor) ? contributors : (string.IsNullOrEmpty(contributors) ? "|" : contributors) + actor.ToLowerInvariant() + "|";

    internal static bool IsContributor(string contributors, string actor) =>
        contributors.Contains("|" + actor.ToLowerInvariant() + "|", StringComparison.Ordinal);

    /// <summary>Refreshes the catalog copy: the Active version's facts, or without one the latest version's.</summary>
    /// <param name="saved">The version just saved with its parsed definition, so it is not parsed twice.</param>
    private static void RefreshSummary(Runbook runbook, DateTime now, (RunbookVersion Version, RunbookDefinition Definition)? saved = null)
    {
        var active = runbook.Versions.FirstOrDefault(v => v.Status == RunbookVersionStatus.Active);
        var latest = runbook.Versions.MaxBy(v => v.Version)!;
        runbook.LatestVersion = latest.Version;
        runbook.ActiveVersion = active?.Version;
        runbook.Status = active?.Status ?? latest.Status;
        runbook.UpdatedAt = now;
        var shown = active ?? latest;
        var definition = saved is { } s && s.Version == shown ? s.Definition : RunbookValidator.Validate(shown.Yaml).Definition;
        if (definition is not null)
            ApplyCatalogFacts(runbook, definition);
    }

    /// <summary>Copies what the catalog shows and searches from a definition onto the runbook row.</summary>
    public static void ApplyCatalogFacts(Runbook runbook, RunbookDefinition d)
    {
        runbook.Title = d.Title;
        runbook.Description = d.Description;
        runbook.Type = d.Type;
        runbook.Owner = d.Owner;
        var tags = d.Tags.Select(t => t.Trim().ToLowerInvariant()).Where(t => t.Length > 0).Distinct().ToList();
        runbook.Tags = "|" + string.Concat(tags.Select(t => t + "|"));
        runbook.TagLinks.RemoveAll(link => !tags.Contains(link.Tag));
        runbook.TagLinks.AddRange(tags.Where(t => runbook.TagLinks.All(link => link.Tag != t)).Select(t => new RunbookTag { RunbookId = runbook.Id, Tag = t }));
        runbook.SearchText = string.Join(' ', [runbook.Name, d.Title, d.Description ?? "", .. d.Tags]).ToLowerInvariant();
    }

    private static RunbookSaveResult Invalid(RunbookValidationResult validation)
    {
        var errors = validation.Diagnostics.Count(d => d.Severity == DiagnosticSeverity.Error);
        return new RunbookSaveResult(OperationResult.Invalid($"The runbook has {errors} problem(s); fix them and save again."), validation.Definition?.Name, null, validation.Diagnostics);
    }

    internal static IEnumerable<string> SplitTags(string tags) => tags.Split('|', StringSplitOptions.RemoveEmptyEntries);

    private static CatalogItem ToItem(Runbook r) =>
        new(r.Name, r.Title, r.Description, r.Type, SplitTags(r.Tags).ToList(), r.Owner, r.Status, r.LatestVersion, r.ActiveVersion, r.UpdatedAt);

    private static VersionSummary ToSummary(RunbookVersion v) =>
        new(v.Version, v.Status, v.Author, v.CreatedAt, v.UpdatedAt, v.ReviewedBy, v.PublishedAt, v.ArchiveState, v.ArchiveError);

    internal static string Describe(RunbookVersionStatus s) => s switch
    {
        RunbookVersionStatus.InReview => "in review",
        _ => s.ToString().ToLowerInvariant(),
    };

    internal static string Past(LifecycleAction a) => a switch
    {
        LifecycleAction.Submit => "submitted",
        LifecycleAction.Approve => "approved",
        LifecycleAction.Reject => "rejected",
        LifecycleAction.Deprecate => "deprecated",
        _ => "archived",
    };

    private static string Allowed(RunbookVersionStatus s) => s switch
    {
        RunbookVersionStatus.Draft => "A draft can be submitted for review or archived.",
        RunbookVersionStatus.InReview => "A version in review can be approved or rejected.",
        RunbookVersionStatus.Active => "An active version can be deprecated.",
        RunbookVersionStatus.Superseded or RunbookVersionStatus.Deprecated => "It can be archived.",
        _ => "An archived version is final.",
    };
}
