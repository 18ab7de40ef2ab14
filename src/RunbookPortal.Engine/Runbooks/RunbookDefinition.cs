using System.Text.Json;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>A parsed, validated runbook (<c>apiVersion: runbooks/v1</c>). Immutable.</summary>
public sealed record RunbookDefinition(
    string ApiVersion,
    string Name,
    string Title,
    string? Description,
    string Type,
    IReadOnlyList<string> Tags,
    string? Owner,
    IReadOnlyList<string> Prerequisites,
    IReadOnlyList<ParameterDefinition> Parameters,
    ApprovalPolicy? Approval,
    ConcurrencyPolicy? Concurrency,
    IReadOnlyList<StepDefinition> Steps)
{
    /// <summary>The only format version this portal reads.</summary>
    public const string CurrentApiVersion = "runbooks/v1";

    public ParameterDefinition? FindParameter(string name) => Parameters.FirstOrDefault(p => p.Name == name);

    public StepDefinition? FindStep(string id) => Steps.FirstOrDefault(s => s.Id == id);
}

/// <summary>The type of a runbook parameter.</summary>
public enum ParameterType
{
    String,
    Int,
    Bool,
    /// <summary>A string that is never shown, logged, stored in events or returned by the API.</summary>
    Secret,
}

/// <summary>Who must sign off an execution before it runs, and when.</summary>
/// <param name="RequiredApprovals">How many distinct approvers must approve (at least 1).</param>
/// <param name="ApproverRole">The role an approver must hold (default <c>Approver</c>).</param>
/// <param name="When">Approval is needed only when every one of these parameters has this value; empty means always.</param>
/// <param name="ExpiresAfter">An execution not approved within this time expires; <c>null</c> means never.</param>
public sealed record ApprovalPolicy(
    int RequiredApprovals,
    string ApproverRole,
    IReadOnlyDictionary<string, string> When,
    TimeSpan? ExpiresAfter)
{
    public const string DefaultApproverRole = "Approver";
}

/// <summary>At most <paramref name="Limit"/> executions with the same rendered <paramref name="Key"/> run at once.</summary>
/// <param name="Key">A text that may contain parameter templates, e.g. <c>{{ environment }}</c>.</param>
/// <param name="Limit">At least 1.</param>
public sealed record ConcurrencyPolicy(string Key, int Limit)
{
    /// <summary>The most characters a rendered key may have: the portal stores it with each execution.</summary>
    public const int MaxKeyLength = 400;

    /// <summary>The key with a run's parameter values filled in; a parameter without a value renders as nothing.</summary>
    public string Render(IReadOnlyDictionary<string, string> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        return TemplateReferences.Replace(Key, r => r.ParameterName is { } p && values.TryGetValue(p, out var v) ? v : "");
    }
}

/// <summary>How often a failed step is tried.</summary>
/// <param name="Attempts">How many times the step runs at most, the first try included (1..20).</param>
/// <param name="Backoff">The pause between two tries (zero when not given).</param>
public sealed record RetryPolicy(int Attempts, TimeSpan Backoff);

/// <summary>
/// Checks that decide whether a step that ran did succeed; every given check must hold.
/// </summary>
/// <param name="OutputContains">The output must contain this text.</param>
/// <param name="Regex">The output must match this regular expression.</param>
/// <param name="ExitCode">The process must exit with this code (0..255).</param>
/// <param name="JsonPath">The output is JSON and this path (<c>$.a.b[0]</c>) must exist.</param>
/// <param name="JsonEquals">When given with <paramref name="JsonPath"/>, the value found there must equal this text.</param>
public sealed record ValidationRule(string? OutputContains, string? Regex, int? ExitCode, string? JsonPath, string? JsonEquals);

/// <summary>
/// One step of a runbook. <see cref="Action"/> names the action and <see cref="Details"/> holds that
/// action's own fields (one record type per action).
/// </summary>
/// <param name="Id">Slug, unique in the runbook; a rollback's id is <c>{stepId}.rollback</c>.</param>
/// <param name="Name">Shown to people; defaults to the id.</param>
/// <param name="Action">One of <see cref="StepActions.All"/>.</param>
/// <param name="Details">The action's fields: <see cref="ShellAction"/>, <see cref="HttpAction"/>, …</param>
/// <param name="Required">Default true; the failure of a step that is not required does not stop the run.</param>
/// <param name="Rollback">Run when a later required step fails and this step had succeeded.</param>
/// <param name="Outputs">Output name → regular expression; the value is the first capture group, or the whole match.</param>
public sealed record StepDefinition(
    string Id,
    string Name,
    string? Description,
    string Action,
    StepAction Details,
    TimeSpan? Timeout,
    RetryPolicy? Retry,
    ValidationRule? Validate,
    bool Required,
    StepDefinition? Rollback,
    IReadOnlyDictionary<string, string> Outputs)
{
    public ShellAction? Shell => Details as ShellAction;
    public HttpAction? Http => Details as HttpAction;
    public SsmAction? Ssm => Details as SsmAction;
    public SsmAutomationAction? SsmAutomation => Details as SsmAutomationAction;
    public LambdaAction? Lambda => Details as LambdaAction;
    public ManualAction? Manual => Details as ManualAction;
    public WaitAction? Wait => Details as WaitAction;
}

/// <summary>The action names of <c>runbooks/v1</c>.</summary>
public static class StepActions
{
    public const string Shell = "shell";
    public const string Http = "http";
    public const string Ssm = "ssm";
    public const string SsmAutomation = "ssm_automation";
    public const string Lambda = "lambda";
    public const string Manual = "manual";
    public const string Wait = "wait";

    public static IReadOnlyList<string> All { get; } = Array.AsReadOnly([Shell, Http, Ssm, SsmAutomation, Lambda, Manual, Wait]);
}

/// <summary>The fields of one step action. Text fields may hold templates (<c>{{ name }}</c>), rendered at run time.</summary>
public abstract record StepAction;

/// <summary>Runs a command. Substituted values are passed as one quoted word and as environment variables.</summary>
/// <param name="Stream">What <c>validate</c> and <c>outputs</c> read (<c>stream:</c>); both streams go to the timeline whatever it says.</param>
public sealed record ShellAction(string Run, string? WorkingDirectory, IReadOnlyDictionary<string, string> Env, ShellStream Stream = ShellStream.Stdout) : StepAction;

/// <summary>The output of a shell step that <c>validate</c> and <c>outputs</c> read.</summary>
public enum ShellStream
{
    Stdout,
    Stderr,
    Both,
}

/// <summary>Sends an HTTP request.</summary>
/// <param name="Method">GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS (default GET).</param>
/// <param name="Body">The body when it was written as text.</param>
/// <param name="JsonBody">The body when it was written as a YAML mapping or list (sent as JSON).</param>
/// <param name="ExpectStatus">Accepted status codes; empty means any 2xx.</param>
public sealed record HttpAction(
    string Method,
    string Url,
    IReadOnlyDictionary<string, string> Headers,
    string? Body,
    JsonElement? JsonBody,
    IReadOnlyList<int> ExpectStatus) : StepAction;

/// <summary>Runs an SSM command document (SendCommand).</summary>
/// <param name="Targets">Target key (<c>tag:App</c>, <c>InstanceIds</c>, …) → values.</param>
/// <param name="MaxConcurrency">SendCommand's MaxConcurrency (<c>10</c> or <c>25%</c>), or <c>null</c> for SSM's default.</param>
/// <param name="MaxErrors">SendCommand's MaxErrors (<c>0</c> or <c>10%</c>), or <c>null</c> for SSM's default.</param>
/// <param name="Comment">The command's comment (may hold templates); <c>null</c>: the portal names the execution and step.</param>
public sealed record SsmAction(
    string Document,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Targets,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Parameters,
    string? MaxConcurrency = null,
    string? MaxErrors = null,
    string? Comment = null) : StepAction
{
    /// <summary>The longest comment SendCommand takes.</summary>
    public const int MaxCommentLength = 100;
}

/// <summary>Starts an SSM Automation document and waits for it.</summary>
public sealed record SsmAutomationAction(
    string Document,
    IReadOnlyDictionary<string, IReadOnlyList<string>> Parameters) : StepAction;

/// <summary>Invokes a Lambda function (RequestResponse).</summary>
/// <param name="Payload">The payload as JSON (from the YAML value), or <c>null</c> for none.</param>
/// <param name="Qualifier">A version or alias to invoke (may hold templates), or <c>null</c> for $LATEST.</param>
/// <param name="LogTail"><c>log_type: tail</c>: the last 4 KB of the function's log go into the step's log.</param>
public sealed record LambdaAction(string Function, JsonElement? Payload, string? Qualifier = null, bool LogTail = false) : StepAction;

/// <summary>
/// Waits for a person to continue or abort: the run is suspended (no thread waits, no shell is held) and the host
/// runs the plan again from this step once someone decided (<see cref="Execution.ManualInput"/>). The step's
/// <c>timeout</c> is how long it waits for a decision before it is aborted (timed out).
/// </summary>
/// <param name="Instructions">What the person should do before deciding; may hold templates (rendered as raw text).</param>
/// <param name="Role">The portal role a person must hold to continue or abort (default <see cref="DefaultRole"/>).</param>
public sealed record ManualAction(string Instructions, string Role) : StepAction
{
    public const string DefaultRole = "Operator";
}

/// <summary>Pauses the run.</summary>
public sealed record WaitAction(TimeSpan Duration) : StepAction;
