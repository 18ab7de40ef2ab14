using System.Collections.Concurrent;
using System.Collections.ObjectModel;
using System.Globalization;
using System.Text.RegularExpressions;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>
/// Checks a YAML tree against <c>runbooks/v1</c> and builds the <see cref="RunbookDefinition"/>. It keeps going
/// after a problem wherever it can, so that one pass reports as many problems as possible. The definition it
/// builds is only meaningful when no error was reported; <see cref="RunbookValidator"/> drops it otherwise.
/// This file holds the shared helpers; the document, parameters and steps have their own files.
/// </summary>
internal sealed partial class RunbookAnalyzer(string source, DiagnosticBag diagnostics)
{
    private readonly string source = source;
    private readonly DiagnosticBag d = diagnostics;

    /// <summary>A set of allowed keys that keeps the order in which to show them.</summary>
    private sealed class KeySet
    {
        private readonly HashSet<string> set;

        public KeySet(params string[] keys)
        {
            Ordered = keys;
            set = new HashSet<string>(keys, StringComparer.Ordinal);
        }

        public IReadOnlyList<string> Ordered { get; }

        public bool Contains(string key) => set.Contains(key);

        public KeySet With(params string[] more) => new([.. Ordered, .. more.Where(k => !set.Contains(k))]);
    }

    /// <summary>A mapping whose keys were checked: the first entry of each key, and the keys suggested for typos.</summary>
    private sealed class MapView(YMap map, string path)
    {
        public YMap Map { get; } = map;
        public string Path { get; } = path;
        public Dictionary<string, YEntry> Entries { get; } = new(StringComparer.Ordinal);
        public HashSet<string>? Suggested { get; set; }

        public YNode? this[string key] => Entries.TryGetValue(key, out var entry) ? entry.Value : null;

        public LazyPath PathOf(string key) => LazyPath.Child(Path, key);
    }

    private enum ScalarKind
    {
        Null,
        Bool,
        Int,
        Float,
        Text,
    }

    private static ScalarKind KindOf(YScalar scalar)
    {
        if (!scalar.IsPlain)
            return ScalarKind.Text;
        var value = scalar.Value;
        if (YamlScalars.IsNull(value))
            return ScalarKind.Null;
        if (YamlScalars.IsBool(value))
            return ScalarKind.Bool;
        if (YamlScalars.IsInteger(value))
            return ScalarKind.Int;
        if (YamlScalars.IsFloat(value))
            return ScalarKind.Float;
        return ScalarKind.Text;
    }

    /// <summary>How a value is described in messages: "a mapping", "a list", "nothing", "'three'".</summary>
    private static string Describe(YNode node) => node switch
    {
        YMap => "a mapping",
        YSeq => "a list",
        YScalar s when s.IsNull => "nothing",
        YScalar s => $"'{Preview(s.Value)}'",
        _ => "something else",
    };

    internal static string Preview(string text, int max = 40)
    {
        var newline = text.AsSpan().IndexOfAny('\r', '\n');
        var cut = newline >= 0 ? Math.Min(newline, max) : Math.Min(text.Length, max);
        return cut < text.Length ? text[..cut] + "…" : text;
    }

    private static string Code(string key) => $"`{Preview(key, 60)}`";

    /// <summary>Checks the keys of a mapping: duplicates, and (when <paramref name="allowed"/> is given) unknown keys with a suggestion.</summary>
    private MapView CheckKeys(YMap map, string path, string what, KeySet? allowed, Func<string, string?>? explain = null)
    {
        var view = new MapView(map, path);
        foreach (var entry in map.Entries)
        {
            var key = entry.Key.Value;
            if (entry.Key.IsPlain && key.Length == 0)
            {
                d.Error(entry.Key, path, $"a key is missing before ':' in {what}");
                continue;
            }
            if (!view.Entries.TryAdd(key, entry))
            {
                d.Error(entry.Key, RunbookPath.Child(path, key), $"{Code(key)} is given twice in {what}; remove one of them");
                continue;
            }
            if (allowed is null || allowed.Contains(key))
                continue;

            var suggestion = Suggestions.Closest(key, allowed.Ordered);
            var hint = explain?.Invoke(key);
            string advice;
            if (hint is not null)
                advice = hint;
            else if (suggestion is not null)
                advice = $"; did you mean `{suggestion}`?";
            else
                advice = $"; use one of: {string.Join(", ", allowed.Ordered)}";
            if (suggestion is not null)
                (view.Suggested ??= new HashSet<string>(StringComparer.Ordinal)).Add(suggestion);
            d.Error(entry.Key, RunbookPath.Child(path, key), $"{Code(key)} is not a field of {what}{advice}");
        }
        return view;
    }

    /// <summary>Reports a missing key at its mapping, unless an unknown key nearby was already suggested to be it.</summary>
    private void Missing(MapView m, string key, string message)
    {
        if (m.Suggested is null || !m.Suggested.Contains(key))
            d.Error(m.Map, m.PathOf(key), message);
    }

    private YMap? Mapping(MapView m, string key, string example)
    {
        var node = m[key];
        switch (node)
        {
            case null:
                return null;
            case YMap map:
                return map;
            default:
                d.Error(node, m.PathOf(key), $"`{key}` must be a mapping{example}, got {Describe(node)}");
                return null;
        }
    }

    /// <summary>A text value. Numbers and booleans are refused (quote them), so that the JSON Schema and the validator agree.</summary>
    private string? Text(MapView m, string key, bool required, string? missing = null)
    {
        var node = m[key];
        if (node is null)
        {
            if (required)
                Missing(m, key, missing ?? $"`{key}` is missing");
            return null;
        }
        return Text(node, m.PathOf(key), key, required);
    }

    private string? Text(YNode node, LazyPath path, string name, bool required = true)
    {
        if (node is not YScalar scalar)
        {
            d.Error(node, path, $"`{name}` must be text, got {Describe(node)}");
            return null;
        }
        switch (KindOf(scalar))
        {
            case ScalarKind.Null:
                d.Error(scalar, path, required ? $"`{name}` is empty; give it a value" : $"`{name}` is empty; give it a value or remove it");
                return null;
            case ScalarKind.Bool:
            case ScalarKind.Int:
            case ScalarKind.Float:
                d.Error(scalar, path, $"`{name}` must be text, got {Describe(scalar)} which YAML reads as a {(KindOf(scalar) == ScalarKind.Bool ? "boolean" : "number")}; put it in quotes");
                return null;
        }
        if (required && string.IsNullOrWhiteSpace(scalar.Value))
        {
            d.Error(scalar, path, $"`{name}` is empty; give it a value");
            return null;
        }
        return scalar.Value;
    }

    /// <summary>A scalar of any type (text, number, boolean) taken as its text, e.g. an environment variable's value.</summary>
    private string? AnyScalar(YNode node, LazyPath path, string name)
    {
        if (node is not YScalar scalar)
        {
            d.Error(node, path, $"`{name}` must be a single value (text, number or true/false), got {Describe(node)}");
            return null;
        }
        if (scalar.IsNull)
        {
            d.Error(scalar, path, $"`{name}` has no value; write '' for an empty text");
            return null;
        }
        return scalar.Value;
    }

    private long? Integer(MapView m, string key, bool required, string? missing = null)
    {
        var node = m[key];
        if (node is null)
        {
            if (required)
                Missing(m, key, missing ?? $"`{key}` is missing");
            return null;
        }
        return Integer(node, m.PathOf(key), key);
    }

    private long? Integer(YNode node, LazyPath path, string name)
    {
        if (node is not YScalar scalar)
        {
            d.Error(node, path, $"`{name}` must be a whole number, got {Describe(node)}");
            return null;
        }
        if (!scalar.IsPlain && YamlScalars.IsInteger(scalar.Value.Trim()))
        {
            d.Error(scalar, path, $"`{name}` must be a whole number, got the text {Describe(scalar)}; remove the quotes");
            return null;
        }
        if (KindOf(scalar) != ScalarKind.Int)
        {
            d.Error(scalar, path, $"`{name}` must be a whole number, got {Describe(scalar)}");
            return null;
        }
        if (!ParameterDefinition.TryParseInt(scalar.Value, out var value))
        {
            d.Error(scalar, path, $"`{name}` is too large, got {Describe(scalar)}");
            return null;
        }
        return value;
    }

    /// <summary>An integer in a range; answers the value, or <c>null</c> after reporting.</summary>
    private int? IntegerInRange(MapView m, string key, long min, long max, string rangeMessage, bool required = false, string? missing = null)
    {
        var value = Integer(m, key, required, missing);
        if (value is null)
            return null;
        if (value < min || value > max)
        {
            d.Error(m[key]!, m.PathOf(key), string.Format(CultureInfo.InvariantCulture, rangeMessage, value));
            return null;
        }
        return (int)value.Value;
    }

    private bool? Boolean(MapView m, string key)
    {
        var node = m[key];
        if (node is null)
            return null;
        if (node is YScalar scalar && KindOf(scalar) == ScalarKind.Bool)
            return ParameterDefinition.TryParseBool(scalar.Value, out var value) && value;
        d.Error(node, m.PathOf(key), node is YScalar { IsPlain: false } quoted && YamlScalars.IsBool(quoted.Value)
            ? $"`{key}` must be true or false, got the text {Describe(node)}; remove the quotes"
            : $"`{key}` must be true or false, got {Describe(node)}");
        return null;
    }

    /// <summary>A duration such as <c>30s</c>; <paramref name="allowZero"/> decides whether <c>0s</c> is accepted.</summary>
    private TimeSpan? Duration(MapView m, string key, bool allowZero, bool required = false, string? missing = null)
    {
        var node = m[key];
        var path = m.PathOf(key);
        if (node is null)
        {
            if (required)
                Missing(m, key, missing ?? $"`{key}` is missing");
            return null;
        }
        if (node is not YScalar scalar || scalar.IsNull)
        {
            d.Error(node, path, $"`{key}` must be {DurationParser.FormatHint}, got {Describe(node)}");
            return null;
        }
        if (!DurationParser.TryParse(scalar.Value, out var value))
        {
            var unitHint = YamlScalars.IsInteger(scalar.Value.Trim()) ? $"; add a unit, e.g. {scalar.Value.Trim()}s" : "";
            d.Error(scalar, path, $"`{key}` must be {DurationParser.FormatHint}, got {Describe(scalar)}{unitHint}");
            return null;
        }
        if (!allowZero && value == TimeSpan.Zero)
        {
            d.Error(scalar, path, $"`{key}` must be longer than zero");
            return null;
        }
        return value;
    }

    private ReadOnlyCollection<string>? TextList(MapView m, string key, string itemName)
    {
        var node = m[key];
        if (node is null)
            return null;
        if (node is not YSeq sequence)
        {
            d.Error(node, m.PathOf(key), $"`{key}` must be a list, e.g. `[a, b]` or one `- item` per line, got {Describe(node)}");
            return null;
        }
        var items = new List<string>(sequence.Items.Count);
        var listPath = m.PathOf(key).ToString();
        for (var i = 0; i < sequence.Items.Count; i++)
        {
            if (Text(sequence.Items[i], LazyPath.Item(listPath, i), itemName) is { } text)
                items.Add(text);
        }
        return items.AsReadOnly();
    }

    /// <summary>A mapping of names to single values of any scalar type (env, headers, approval.when).</summary>
    private ReadOnlyDictionary<string, string> ScalarMap(MapView m, string key, string what, string example, Func<string, bool>? validName = null, string? nameRule = null)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Mapping(m, key, example) is not { } map)
            return result.AsReadOnly();
        var view = CheckKeys(map, m.PathOf(key).ToString(), what, allowed: null);
        foreach (var (name, entry) in view.Entries)
        {
            if (validName is not null && !validName(name))
            {
                d.Error(entry.Key, view.PathOf(name), $"{Code(name)} {nameRule}");
                continue;
            }
            if (AnyScalar(entry.Value, view.PathOf(name), name) is { } value)
                result[name] = value;
        }
        return result.AsReadOnly();
    }

    /// <summary>A mapping of names to a value or a list of values (SSM targets and parameters).</summary>
    private ReadOnlyDictionary<string, IReadOnlyList<string>> ListMap(MapView m, string key, string what, string example)
    {
        var result = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        if (Mapping(m, key, example) is not { } map)
            return result.AsReadOnly();
        var view = CheckKeys(map, m.PathOf(key).ToString(), what, allowed: null);
        foreach (var (name, entry) in view.Entries)
        {
            var path = view.PathOf(name);
            if (entry.Value is YSeq sequence)
            {
                var values = new List<string>(sequence.Items.Count);
                var listPath = path.ToString();
                for (var i = 0; i < sequence.Items.Count; i++)
                {
                    if (AnyScalar(sequence.Items[i], LazyPath.Item(listPath, i), name) is { } item)
                        values.Add(item);
                }
                result[name] = values.AsReadOnly();
            }
            else if (entry.Value is YMap)
            {
                d.Error(entry.Value, path, $"{Code(name)} must be a value or a list of values, got a mapping");
            }
            else if (AnyScalar(entry.Value, path, name) is { } value)
            {
                result[name] = Array.AsReadOnly([value]);
            }
        }
        return result.AsReadOnly();
    }

    /// <summary>Checks that <paramref name="pattern"/> compiles; reports at <paramref name="at"/> otherwise.</summary>
    private bool CheckRegex(YNode at, LazyPath path, string name, string pattern)
    {
        if (RegexProblemOf(pattern) is not { } problem)
            return true;
        d.Error(at, path, $"`{name}` is not a valid regular expression: {problem}");
        return false;
    }

    /// <summary>
    /// Patterns already checked, with their problem (<c>null</c> when valid): the editor validates the same
    /// document over and over while someone types. Bounded; cleared when full.
    /// </summary>
    private static readonly ConcurrentDictionary<string, string?> CheckedPatterns = new(StringComparer.Ordinal);

    private static string? RegexProblemOf(string pattern)
    {
        if (pattern.Length <= 1024 && CheckedPatterns.TryGetValue(pattern, out var known))
            return known;
        string? problem = null;
        try
        {
            _ = new Regex(pattern, RegexOptions.CultureInvariant, RunbookLimits.RegexTimeout);
        }
        catch (ArgumentException exception)
        {
            problem = RegexProblem(exception);
        }
        if (pattern.Length <= 1024)
        {
            if (CheckedPatterns.Count >= 4096)
                CheckedPatterns.Clear();
            CheckedPatterns[pattern] = problem;
        }
        return problem;
    }

    private static string RegexProblem(ArgumentException exception)
    {
        // "Invalid pattern '(' at offset 1. Not enough )'s." → "not enough )'s (at offset 1)"
        var message = exception.Message;
        var match = Regex.Match(message, @"^Invalid pattern '.*' at offset (\d+)\. (.*)$", RegexOptions.Singleline | RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        if (match.Success)
            return $"{match.Groups[2].Value.TrimEnd('.')} (at character {match.Groups[1].Value})";
        return message.TrimEnd('.');
    }

    /// <summary>Reports duplicate keys anywhere in a free-form value (payloads, bodies).</summary>
    private void CheckFreeForm(YNode node, string path)
    {
        switch (node)
        {
            case YMap map:
                var view = CheckKeys(map, path, "this mapping", allowed: null);
                foreach (var (key, entry) in view.Entries)
                    CheckFreeForm(entry.Value, RunbookPath.Child(path, key));
                break;
            case YSeq sequence:
                for (var i = 0; i < sequence.Items.Count; i++)
                    CheckFreeForm(sequence.Items[i], RunbookPath.Item(path, i));
                break;
        }
    }
}
