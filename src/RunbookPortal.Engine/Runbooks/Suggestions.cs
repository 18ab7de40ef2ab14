namespace RunbookPortal.Engine.Runbooks;

/// <summary>"Did you mean …?": the closest candidate within an edit distance of 2.</summary>
internal static class Suggestions
{
    public const int MaxDistance = 2;

    public static string? Closest(string input, IEnumerable<string> candidates, IReadOnlyDictionary<string, string>? aliases = null)
    {
        if (aliases is not null && aliases.TryGetValue(input.ToLowerInvariant(), out var alias))
            return alias;
        if (input.Length > 64)
            return null;
        string? best = null;
        var bestDistance = int.MaxValue;
        foreach (var candidate in candidates)
        {
            if (string.Equals(candidate, input, StringComparison.OrdinalIgnoreCase))
                return candidate;
            var distance = Distance(input, candidate);
            if (distance < bestDistance)
            {
                best = candidate;
                bestDistance = distance;
            }
        }
        // Short words are close to everything: demand that the input keeps most of its letters.
        return bestDistance <= MaxDistance && bestDistance < input.Length ? best : null;
    }

    /// <summary>Optimal string alignment distance (Damerau–Levenshtein with adjacent transpositions), case-insensitive.</summary>
    public static int Distance(string a, string b)
    {
        if (Math.Abs(a.Length - b.Length) > MaxDistance)
            return MaxDistance + 1;
        var rows = a.Length + 1;
        var columns = b.Length + 1;
        Span<int> d = rows * columns <= 4096 ? stackalloc int[rows * columns] : new int[rows * columns];
        for (var i = 0; i < rows; i++)
            d[i * columns] = i;
        for (var j = 0; j < columns; j++)
            d[j] = j;
        for (var i = 1; i < rows; i++)
        {
            for (var j = 1; j < columns; j++)
            {
                var cost = char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 1]) ? 0 : 1;
                var value = Math.Min(Math.Min(d[(i - 1) * columns + j] + 1, d[i * columns + j - 1] + 1), d[(i - 1) * columns + j - 1] + cost);
                if (i > 1 && j > 1 && char.ToLowerInvariant(a[i - 1]) == char.ToLowerInvariant(b[j - 2]) && char.ToLowerInvariant(a[i - 2]) == char.ToLowerInvariant(b[j - 1]))
                    value = Math.Min(value, d[(i - 2) * columns + j - 2] + 1);
                d[i * columns + j] = value;
            }
        }
        return d[rows * columns - 1];
    }

    /// <summary>" Did you mean `x`?" or an empty string.</summary>
    public static string DidYouMean(string input, IEnumerable<string> candidates, IReadOnlyDictionary<string, string>? aliases = null) =>
        Closest(input, candidates, aliases) is { } suggestion ? $"; did you mean `{suggestion}`?" : "";
}
