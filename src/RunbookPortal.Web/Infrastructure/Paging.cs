namespace RunbookPortal.Web.Infrastructure;

/// <summary>
/// The paging rule of every list the API serves: pages count from 0, a page holds 1 to <see cref="MaxPageSize"/>
/// items, and the first item of the page (page × pageSize) lies within what a database query can skip to.
/// </summary>
public static class Paging
{
    public const int MaxPageSize = 200;

    /// <summary>Ok, or a 400 naming the field and the rule it broke (the API checks this before it queries).</summary>
    public static OperationResult Check(long page, long pageSize)
    {
        var (field, problem) = pageSize is < 1 or > MaxPageSize
            ? ("pageSize", $"pageSize must be between 1 and {MaxPageSize}; it was {pageSize}.")
            : page < 0
                ? ("page", $"page counts from 0 (the first page); it was {page}.")
                : page > int.MaxValue / pageSize
                    ? ("page", $"page {page} × pageSize {pageSize} is past the last item a list can reach (a page may start at item {int.MaxValue} at most); ask for an earlier page.")
                    : (null, null);
        return problem is null ? OperationResult.Ok : OperationResult.Invalid(problem, new Dictionary<string, string[]> { [field!] = [problem] });
    }

    /// <summary>
    /// Page <paramref name="page"/> of <paramref name="source"/> (which must be ordered). The values must pass
    /// <see cref="Check"/>: the API answers 400 before it gets here, so anything else is a caller's bug.
    /// </summary>
    public static IQueryable<T> Page<T>(this IQueryable<T> source, int page, int pageSize)
    {
        if (Check(page, pageSize) is { Succeeded: false } refused)
            throw new ArgumentOutOfRangeException(nameof(page), refused.Message);
        return source.Skip(page * pageSize).Take(pageSize);
    }
}
