using System.Text.Json;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// One line of a run's log: a step_output event (or the note a step_output_truncated event leaves). The text is
/// as the runner recorded it — masked, possibly with ANSI escape sequences, and hostile: it is only ever rendered as text.
/// </summary>
public sealed class LogLine(long seq, DateTime at, string stepId, bool stderr, string text, bool note = false)
{
    public long Seq { get; } = seq;
    public DateTime At { get; } = at;
    public string StepId { get; } = stepId;
    public bool Stderr { get; } = stderr;
    public string Text { get; } = text;

    /// <summary>A line the portal wrote (output cut off), not the step.</summary>
    public bool Note { get; } = note;

    private string? _plain;

    /// <summary>The text without escape sequences: what search looks in.</summary>
    public string Plain => _plain ??= AnsiText.Strip(Text);

    /// <summary>The line an output event stands for; null for any other event.</summary>
    public static LogLine? Of(long seq, DateTime at, string kind, string? stepId, JsonElement data) => kind switch
    {
        EventKinds.StepOutput => new LogLine(seq, at, stepId ?? "", Field(data, "stream") == "stderr", Field(data, "text") ?? ""),
        EventKinds.StepOutputTruncated => new LogLine(seq, at, stepId ?? "", false,
            $"[output cut off: the step wrote more than {Field(data, "limitBytes")} bytes; the rest of this attempt's output was not recorded]", note: true),
        _ => null,
    };

    public static LogLine? Of(EventView e) => Of(e.Seq, e.At, e.Kind, e.StepId, e.Data);

    public static LogLine? Of(ExecutionEventRecord r)
    {
        if (r.Kind is not (EventKinds.StepOutput or EventKinds.StepOutputTruncated))
            return null;
        using var data = JsonDocument.Parse(r.DataJson);
        return Of(r.Seq, r.At, r.Kind, r.StepId, data.RootElement);
    }

    /// <summary>The line as the downloaded log has it: time, step, stream, then the text as recorded.</summary>
    public string ToDownloadLine() => $"{At:yyyy-MM-ddTHH:mm:ss.fff}Z\t{StepId}\t{(Note ? "portal" : Stderr ? "stderr" : "stdout")}\t{Text}";

    private static string? Field(JsonElement data, string name) =>
        data.ValueKind == JsonValueKind.Object && data.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? v.ValueKind == JsonValueKind.String ? v.GetString() : v.GetRawText()
            : null;
}

/// <summary>The lines of a run the page has received, in seq order: all of them, and per step (a rollback under its own id).</summary>
public sealed class ExecutionLog
{
    private readonly Dictionary<string, List<LogLine>> _byStep = new(StringComparer.Ordinal);

    public List<LogLine> All { get; } = [];

    public List<LogLine> Of(string stepId) => _byStep.TryGetValue(stepId, out var lines) ? lines : [];

    /// <summary>The steps (and rollbacks) that wrote anything, in the order they first did.</summary>
    public List<string> Steps { get; } = [];

    public void Add(LogLine line)
    {
        All.Add(line);
        if (!_byStep.TryGetValue(line.StepId, out var lines))
        {
            _byStep[line.StepId] = lines = [];
            Steps.Add(line.StepId);
        }
        lines.Add(line);
    }

    public void Clear()
    {
        All.Clear();
        _byStep.Clear();
        Steps.Clear();
    }
}
