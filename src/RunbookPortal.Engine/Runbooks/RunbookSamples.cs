using System.Reflection;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>A sample runbook shipped with the portal.</summary>
/// <param name="Name">The runbook's <c>name</c>.</param>
/// <param name="Type">The runbook's <c>type</c>.</param>
/// <param name="Yaml">The YAML text, ready to be loaded into the editor or imported.</param>
public sealed record RunbookSample(string Name, string Type, string Yaml);

/// <summary>Realistic sample runbooks, one per runbook type, embedded in this assembly (<c>Runbooks/Samples/*.yaml</c>).</summary>
public static class RunbookSamples
{
    private const string ResourcePrefix = "RunbookPortal.Engine.Runbooks.Samples.";

    private static readonly Lazy<IReadOnlyList<RunbookSample>> Samples = new(Load);

    /// <summary>Every sample, in the order of <see cref="RunbookTypes.All"/>.</summary>
    public static IReadOnlyList<RunbookSample> All => Samples.Value;

    public static RunbookSample? Find(string name) => All.FirstOrDefault(s => s.Name == name);

    private static IReadOnlyList<RunbookSample> Load()
    {
        var assembly = typeof(RunbookSamples).Assembly;
        var samples = new List<RunbookSample>();
        foreach (var resource in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal))
        {
            var yaml = Read(assembly, resource);
            var result = RunbookValidator.Validate(yaml);
            var definition = result.Definition
                ?? throw new InvalidOperationException($"The embedded sample {resource} is not a valid runbook: {string.Join("; ", result.Errors.Select(e => $"{e.Line}:{e.Column} {e.Message}"))}");
            samples.Add(new RunbookSample(definition.Name, definition.Type, yaml));
        }
        return samples.OrderBy(s => IndexOfType(s.Type)).ThenBy(s => s.Name, StringComparer.Ordinal).ToArray().AsReadOnly();
    }

    private static int IndexOfType(string type)
    {
        for (var i = 0; i < RunbookTypes.All.Count; i++)
        {
            if (RunbookTypes.All[i] == type)
                return i;
        }
        return int.MaxValue;
    }

    private static string Read(Assembly assembly, string resource)
    {
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"The embedded sample {resource} is missing.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}
