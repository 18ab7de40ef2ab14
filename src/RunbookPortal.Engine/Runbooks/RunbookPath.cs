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
