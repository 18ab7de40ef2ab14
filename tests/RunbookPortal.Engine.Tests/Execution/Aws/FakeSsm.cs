using System.Text.Json;
using System.Text.Json.Nodes;

namespace RunbookPortal.Engine.Tests.Execution.Aws;

/// <summary>
/// Systems Manager as the SDK sees it: AWS JSON 1.1 (<c>POST /</c>, <c>X-Amz-Target: AmazonSSM.{Operation}</c>,
/// <c>application/x-amz-json-1.1</c>) on an <see cref="AwsTestEndpoint"/> that checks every signature, answering with the
/// documented shapes. Commands and automations advance one state per poll, as the test scripts them.
/// </summary>
internal sealed class FakeSsm : IAsyncDisposable
{
    /// <summary>How one instance runs a command: in progress for <paramref name="Polls"/> polls, then ends as given.</summary>
    public sealed record Plan(string InstanceId, int Polls, string Status = "Success", string? Details = null, int ExitCode = 0,
        string Stdout = "", string Stderr = "", bool Delivered = true);

    /// <summary>An automation: its steps end one per poll; then it ends as given.</summary>
    public sealed record AutomationPlan(IReadOnlyList<(string Name, string Action, string Status, string? Failure)> Steps, string Status = "Success",
        Dictionary<string, List<string>>? Outputs = null, string? Failure = null, bool Hangs = false);

    public sealed record Call(string Operation, JsonObject Body);

    private sealed class CommandState(string id, JsonObject request, List<Plan> plans)
    {
        public string Id { get; } = id;
        public JsonObject Request { get; } = request;
        public List<Plan> Plans { get; } = plans;
        public int Polls { get; set; }
        public bool Cancelled { get; set; }
    }

    private sealed class AutomationState(string id, string document, AutomationPlan plan)
    {
        public string Id { get; } = id;
        public string Document { get; } = document;
        public AutomationPlan Plan { get; } = plan;
        public int Polls { get; set; }
        public bool Stopped { get; set; }
    }

    private readonly Lock _lock = new();
    private readonly Dictionary<string, CommandState> _commands = [];
    private readonly Dictionary<string, AutomationState> _automations = [];
    private readonly List<Call> _calls = [];
    private readonly List<string> _protocolProblems = [];

    public FakeSsm(string region = "eu-west-1")
    {
        Endpoint = new AwsTestEndpoint("ssm", region, (request, _) => Task.FromResult(Answer(request)));
    }

    public AwsTestEndpoint Endpoint { get; }

    /// <summary>Which instances a SendCommand reaches, from its request (default: none).</summary>
    public Func<JsonObject, List<Plan>> Instances { get; set; } = _ => [];

    /// <summary>How an automation runs, from its request.</summary>
    public Func<JsonObject, AutomationPlan> Automations { get; set; } = _ => new AutomationPlan([]);

    /// <summary>A chance to answer a call otherwise (an error, throttling); null: answer as SSM would.</summary>
    public Func<Call, AwsTestEndpoint.Response?> Intercept { get; set; } = _ => null;

    /// <summary>Parameter Store: name → (type, value as stored). A SecureString is answered decrypted only WithDecryption.</summary>
    public Dictionary<string, (string Type, string Value)> Parameters { get; } = new(StringComparer.Ordinal);

    /// <summary>Parameters the caller may not read (AccessDeniedException).</summary>
    public HashSet<string> Denied { get; } = new(StringComparer.Ordinal);

    /// <summary>The most invocations one ListCommandInvocations page holds (the rest come with NextToken).</summary>
    public int PageSize { get; set; } = 2;

    public IReadOnlyList<Call> Calls
    {
        get
        {
            lock (_lock)
                return [.. _calls];
        }
    }

    public IReadOnlyList<Call> CallsOf(string operation) => [.. Calls.Where(c => c.Operation == operation)];

    public IReadOnlyList<string> ProtocolProblems
    {
        get
        {
            lock (_lock)
                return [.. _protocolProblems, .. Endpoint.SignatureProblems];
        }
    }

    private AwsTestEndpoint.Response Answer(AwsTestEndpoint.Request request)
    {
        var target = request.Header("X-Amz-Target") ?? "";
        if (request.Method != "POST" || request.Path != "/" || !target.StartsWith("AmazonSSM.", StringComparison.Ordinal)
            || request.Header("Content-Type")?.StartsWith("application/x-amz-json-1.1", StringComparison.Ordinal) != true)
        {
            lock (_lock)
                _protocolProblems.Add($"not an AWS JSON 1.1 SSM call: {request.Method} {request.Path} target '{target}' type '{request.Header("Content-Type")}'");
            return Error("SerializationException", "not a JSON 1.1 call");
        }
        var call = new Call(target["AmazonSSM.".Length..], JsonNode.Parse(request.Body)!.AsObject());
        lock (_lock)
        {
            _calls.Add(call);
            if (Intercept(call) is { } intercepted)
                return intercepted;
            return call.Operation switch
            {
                "SendCommand" => SendCommand(call.Body),
                "ListCommands" => ListCommands(call.Body),
                "ListCommandInvocations" => ListCommandInvocations(call.Body),
                "GetCommandInvocation" => GetCommandInvocation(call.Body),
                "CancelCommand" => CancelCommand(call.Body),
                "StartAutomationExecution" => StartAutomation(call.Body),
                "GetAutomationExecution" => GetAutomation(call.Body),
                "StopAutomationExecution" => StopAutomation(call.Body),
                "GetParameter" => GetParameter(call.Body),
                _ => Error("InvalidAction", $"{call.Operation} is not served by this test endpoint"),
            };
        }
    }

    public static AwsTestEndpoint.Response Error(string type, string message, int status = 400) =>
        new(status, new JsonObject { ["__type"] = type, ["message"] = message }.ToJsonString(), ContentType: "application/x-amz-json-1.1");

    private static AwsTestEndpoint.Response Ok(JsonObject body) => new(200, body.ToJsonString(), ContentType: "application/x-amz-json-1.1");

    private static double Epoch() => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;

    private AwsTestEndpoint.Response SendCommand(JsonObject body)
    {
        var id = $"{Guid.NewGuid()}";
        var state = new CommandState(id, body, Instances(body));
        _commands[id] = state;
        return Ok(new JsonObject { ["Command"] = CommandJson(state) });
    }

    private JsonObject CommandJson(CommandState state)
    {
        var status = CommandStatus(state);
        return new JsonObject
        {
            ["CommandId"] = state.Id,
            ["DocumentName"] = state.Request["DocumentName"]?.GetValue<string>(),
            ["Comment"] = state.Request["Comment"]?.GetValue<string>(),
            ["Status"] = status,
            ["StatusDetails"] = status,
            ["RequestedDateTime"] = Epoch(),
            ["TargetCount"] = state.Polls == 0 ? 0 : state.Plans.Count,
            ["CompletedCount"] = state.Plans.Count(p => InvocationStatus(state, p).Status is not ("InProgress" or "Pending")),
        };
    }

    private static (string Status, string Details) InvocationStatus(CommandState state, Plan plan)
    {
        if (state.Polls > plan.Polls)
            return (plan.Status, plan.Details ?? plan.Status);
        if (state.Cancelled)
            return ("Cancelled", "Cancelled");
        return state.Polls == 0 ? ("Pending", "Pending") : ("InProgress", "InProgress");
    }

    private static string CommandStatus(CommandState state)
    {
        var statuses = state.Plans.Select(p => InvocationStatus(state, p).Status).ToList();
        if (state.Polls == 0)
            return "Pending";
        if (statuses.Any(s => s is "InProgress" or "Pending"))
            return state.Cancelled ? "Cancelling" : "InProgress";
        if (statuses.All(s => s == "Success"))
            return "Success";
        if (statuses.Contains("Cancelled"))
            return "Cancelled";
        return statuses.Contains("Failed") ? "Failed" : "TimedOut";
    }

    private AwsTestEndpoint.Response ListCommands(JsonObject body)
    {
        var id = body["CommandId"]!.GetValue<string>();
        return _commands.TryGetValue(id, out var state)
            ? Ok(new JsonObject { ["Commands"] = new JsonArray(CommandJson(state)) })
            : Error("InvalidCommandId", $"no command {id}");
    }

    private AwsTestEndpoint.Response ListCommandInvocations(JsonObject body)
    {
        var id = body["CommandId"]!.GetValue<string>();
        if (!_commands.TryGetValue(id, out var state))
            return Error("InvalidCommandId", $"no command {id}");
        var start = body["NextToken"] is { } token ? int.Parse(token.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture) : 0;
        if (start == 0)
            state.Polls++;
        if (state.Polls == 1)
            return Ok(new JsonObject { ["CommandInvocations"] = new JsonArray() }); // targets are resolved after the first look
        var page = state.Plans.Skip(start).Take(PageSize).Select(p =>
        {
            var (status, details) = InvocationStatus(state, p);
            return (JsonNode)new JsonObject
            {
                ["CommandId"] = id, ["InstanceId"] = p.InstanceId, ["Status"] = status, ["StatusDetails"] = details,
                ["DocumentName"] = state.Request["DocumentName"]?.GetValue<string>(), ["RequestedDateTime"] = Epoch(),
            };
        }).ToArray();
        var answer = new JsonObject { ["CommandInvocations"] = new JsonArray(page) };
        if (start + PageSize < state.Plans.Count)
            answer["NextToken"] = (start + PageSize).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Ok(answer);
    }

    private AwsTestEndpoint.Response GetCommandInvocation(JsonObject body)
    {
        var id = body["CommandId"]!.GetValue<string>();
        var instance = body["InstanceId"]!.GetValue<string>();
        if (!_commands.TryGetValue(id, out var state) || state.Plans.FirstOrDefault(p => p.InstanceId == instance) is not { } plan || !plan.Delivered)
            return Error("InvocationDoesNotExist", "An error occurred (InvocationDoesNotExist)");
        var (status, details) = InvocationStatus(state, plan);
        var ended = status is not ("InProgress" or "Pending");
        return Ok(new JsonObject
        {
            ["CommandId"] = id, ["InstanceId"] = instance, ["Status"] = status, ["StatusDetails"] = details,
            ["ResponseCode"] = ended && status != "Cancelled" ? plan.ExitCode : -1,
            ["StandardOutputContent"] = ended ? plan.Stdout : "", ["StandardErrorContent"] = ended ? plan.Stderr : "",
            ["DocumentName"] = state.Request["DocumentName"]?.GetValue<string>(), ["PluginName"] = "aws:runShellScript",
        });
    }

    private AwsTestEndpoint.Response CancelCommand(JsonObject body)
    {
        var id = body["CommandId"]!.GetValue<string>();
        if (!_commands.TryGetValue(id, out var state))
            return Error("InvalidCommandId", $"no command {id}");
        state.Cancelled = true;
        foreach (var (plan, index) in state.Plans.Select((p, i) => (p, i)).ToList())
        {
            if (state.Polls <= plan.Polls)
                state.Plans[index] = plan with { Polls = int.MaxValue - 1 }; // never ends on its own now: Cancelled
        }
        return Ok([]);
    }

    private AwsTestEndpoint.Response StartAutomation(JsonObject body)
    {
        var id = $"{Guid.NewGuid()}";
        _automations[id] = new AutomationState(id, body["DocumentName"]!.GetValue<string>(), Automations(body));
        return Ok(new JsonObject { ["AutomationExecutionId"] = id });
    }

    private AwsTestEndpoint.Response GetAutomation(JsonObject body)
    {
        var id = body["AutomationExecutionId"]!.GetValue<string>();
        if (!_automations.TryGetValue(id, out var state))
            return Error("AutomationExecutionNotFoundException", $"no automation {id}");
        state.Polls++;
        var steps = new JsonArray();
        for (var i = 0; i < state.Plan.Steps.Count; i++)
        {
            var (name, action, status, failure) = state.Plan.Steps[i];
            var shown = state.Stopped && i >= state.Polls - 1 ? "Cancelled"
                : i < state.Polls - 1 ? status
                : i == state.Polls - 1 ? "InProgress" : "Pending";
            var step = new JsonObject { ["StepName"] = name, ["Action"] = action, ["StepStatus"] = shown, ["StepExecutionId"] = $"{id}-{i}" };
            if (shown == "Failed" && failure is not null)
                step["FailureMessage"] = failure;
            steps.Add(step);
        }
        var done = !state.Plan.Hangs && state.Polls > state.Plan.Steps.Count;
        var execution = new JsonObject
        {
            ["AutomationExecutionId"] = id, ["DocumentName"] = state.Document,
            ["AutomationExecutionStatus"] = state.Stopped ? "Cancelled" : done ? state.Plan.Status : "InProgress",
            ["ExecutionStartTime"] = Epoch(), ["StepExecutions"] = steps,
        };
        if (done && state.Plan.Outputs is { } outputs)
            execution["Outputs"] = JsonSerializer.SerializeToNode(outputs);
        if (done && state.Plan.Failure is { } message)
            execution["FailureMessage"] = message;
        return Ok(new JsonObject { ["AutomationExecution"] = execution });
    }

    private AwsTestEndpoint.Response StopAutomation(JsonObject body)
    {
        var id = body["AutomationExecutionId"]!.GetValue<string>();
        if (!_automations.TryGetValue(id, out var state))
            return Error("AutomationExecutionNotFoundException", $"no automation {id}");
        state.Stopped = true;
        return Ok([]);
    }

    private AwsTestEndpoint.Response GetParameter(JsonObject body)
    {
        var name = body["Name"]!.GetValue<string>();
        if (Denied.Contains(name))
            return Error("AccessDeniedException", $"User: arn:aws:iam::123456789012:user/portal is not authorized to perform: ssm:GetParameter on resource: {name}");
        if (!Parameters.TryGetValue(name, out var parameter))
            return Error("ParameterNotFound", "");
        var decrypt = body["WithDecryption"]?.GetValue<bool>() == true;
        var value = parameter.Type == "SecureString" && !decrypt ? "AQICAHh-encrypted-blob" : parameter.Value;
        return Ok(new JsonObject
        {
            ["Parameter"] = new JsonObject
            {
                ["Name"] = name, ["Type"] = parameter.Type, ["Value"] = value, ["Version"] = 1, ["LastModifiedDate"] = Epoch(),
                ["ARN"] = $"arn:aws:ssm:eu-west-1:123456789012:parameter{name}", ["DataType"] = "text",
            },
        });
    }

    public ValueTask DisposeAsync() => Endpoint.DisposeAsync();
}
