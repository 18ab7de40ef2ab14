namespace RunbookPortal.Engine.Runbooks;

/// <summary>Builds the JSON-path-like locations of diagnostics: <c>steps[2].retry.attempts</c>, <c>steps[0].targets["tag:App"]</c>.</summary>
public static class RunbookPath
{
    public static string Child(string parent, string key)
    {
        if (IsSimpleKey(key))
            return parent.Length == 0 ? key : string.Concat(parent, ".", key);
        if (key.Length > 200)
            key = key[..200] + "…";
        var quoted = "[\"" + key.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"]";
        return parent + quoted;
    }

    public static string Item(string parent, int index) => string.Concat(parent, "[", index.ToString(System.Globalization.CultureInfo.InvariantCulture), "]");

    private static bool IsSimpleKey(string key)
    {
        if (key.Length == 0 || key.Length > 200 || char.IsAsciiDigit(key[0]))
            return false;
        foreach (var c in key)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
                return false;
        }
        return true;
    }
}

/// <summary>
/// A diagnostic path that is only turned into text when a diagnostic is reported: most values are fine, so
/// building every path string up front would be wasted work.
/// </summary>
internal readonly struct LazyPath
{
    private readonly string parent;
    private readonly string? key;
    private readonly int index;

    private LazyPath(string parent, string? key, int index)
    {
        this.parent = parent;
        this.key = key;
        this.index = index;
    }

    public static LazyPath Child(string parent, string key) => new(parent, key, -1);

    public static LazyPath Item(string parent, int index) => new(parent, null, index);

    public static implicit operator LazyPath(string path) => new(path, null, -1);

    public override string ToString() =>
        key is not null ? RunbookPath.Child(parent, key)
        : index >= 0 ? RunbookPath.Item(parent, index)
        : parent ?? "";
}
