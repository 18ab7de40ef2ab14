using System.Collections.ObjectModel;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace RunbookPortal.Engine.Runbooks;

internal sealed partial class RunbookAnalyzer
{
    private static readonly string[] CommonStepKeys = ["id", "name", "description", "action", "timeout", "retry", "validate", "required", "rollback", "outputs"];
    private static readonly string[] RollbackOnlyRefused = ["id", "required", "outputs", "rollback"];

    /// <summary>The fields of each action, in the order they are shown.</summary>
    private static readonly Dictionary<string, string[]> ActionKeys = new(StringComparer.Ordinal)
    {
        [StepActions.Shell] = ["run", "working_directory", "env", "stream"],
        [StepActions.Http] = ["method", "url", "headers", "body", "expect_status"],
        [StepActions.Ssm] = ["document", "targets", "parameters", "max_concurrency", "max_errors", "comment"],
        [StepActions.SsmAutomation] = ["document", "parameters"],
        [StepActions.Lambda] = ["function", "payload", "qualifier", "log_type"],
        [StepActions.Manual] = ["instructions", "role"],
        [StepActions.Wait] = ["duration"],
    };

    private static readonly Dictionary<(string? Action, bool Rollback), KeySet> StepKeySets = BuildStepKeySets();

    private static readonly Dictionary<string, string> ActionAliases = new(StringComparer.Ordinal)
    {
        ["bash"] = StepActions.Shell,
        ["sh"] = StepActions.Shell,
        ["script"] = StepActions.Shell,
        ["command"] = StepActions.Shell,
        ["run"] = StepActions.Shell,
        ["exec"] = StepActions.Shell,
        ["webhook"] = StepActions.Http,
        ["request"] = StepActions.Http,
        ["curl"] = StepActions.Http,
        ["api"] = StepActions.Http,
        ["https"] = StepActions.Http,
        ["automation"] = StepActions.SsmAutomation,
        ["ssm-automation"] = StepActions.SsmAutomation,
        ["function"] = StepActions.Lambda,
        ["invoke"] = StepActions.Lambda,
        ["approval"] = StepActions.Manual,
        ["approve"] = StepActions.Manual,
        ["human"] = StepActions.Manual,
        ["sleep"] = StepActions.Wait,
        ["pause"] = StepActions.Wait,
        ["delay"] = StepActions.Wait,
    };

    private static readonly string[] HttpMethods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    private static readonly KeySet RetryKeys = new("attempts", "backoff");
    private static readonly KeySet ValidateKeys = new("output_contains", "regex", "exit_code", "json");
    private static readonly KeySet JsonCheckKeys = new("path", "equals");

    /// <summary>Keys of a step whose values are never templated (ids, numbers, durations, regular expressions).</summary>
    private static readonly HashSet<string> UntemplatedStepKeys = new(StringComparer.Ordinal)
    {
        "id", "action", "outputs", "rollback", "retry", "timeout", "required", "method", "expect_status", "duration", "validate", "role",
        "max_concurrency", "max_errors", "log_type",
    };

    /// <summary>SendCommand's MaxConcurrency: a count from 1, or a percentage from 1% to 100%.</summary>
    [GeneratedRegex(@"^([1-9][0-9]*|[1-9][0-9]?%|100%)$", RegexOptions.CultureInvariant)]
    private static partial Regex SsmConcurrencySyntax();

    /// <summary>SendCommand's MaxErrors: a count from 0, or a percentage from 0% to 100%.</summary>
    [GeneratedRegex(@"^(0|[1-9][0-9]*|[0-9]%|[1-9][0-9]%|100%)$", RegexOptions.CultureInvariant)]
    private static partial Regex SsmErrorsSyntax();

    [GeneratedRegex(@"^\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[[0-9]+\])*$", RegexOptions.CultureInvariant)]
    private static partial Regex JsonPathSyntax();

    private sealed record StepInfo(int Index, HashSet<string> Outputs);

    /// <summary>Steps by id (first occurrence), with the outputs each declares: read before the steps are checked, so references can point forward.</summary>
    private readonly Dictionary<string, StepInfo> stepTable = new(StringComparer.Ordinal);

    private static Dictionary<(string?, bool), KeySet> BuildStepKeySets()
    {
        var sets = new Dictionary<(string?, bool), KeySet>();
        var allActionKeys = ActionKeys.Values.SelectMany(k => k).Distinct().ToArray();
        var rollbackCommon = CommonStepKeys.Where(k => !RollbackOnlyRefused.Contains(k)).ToArray();
        sets[(null, false)] = new KeySet([.. CommonStepKeys, .. allActionKeys]);
        sets[(null, true)] = new KeySet([.. rollbackCommon, .. allActionKeys]);
        foreach (var (action, keys) in ActionKeys)
        {
            sets[(action, false)] = new KeySet([.. CommonStepKeys, .. keys]);
            sets[(action, true)] = new KeySet([.. rollbackCommon, .. keys]);
        }
        return sets;
    }

    private static string Article(string action) => action is StepActions.Http or StepActions.Ssm or StepActions.SsmAutomation ? "an" : "a";

    private ReadOnlyCollection<StepDefinition> Steps(MapView top)
    {
        var result = new List<StepDefinition>();
        var node = top["steps"];
        if (node is null)
        {
            Missing(top, "steps", "`steps` is missing; add a list of steps, each with `id`, `name`, `action` and that action's fields");
            return result.AsReadOnly();
        }
        if (node is not YSeq sequence)
        {
            d.Error(node, "steps", $"`steps` must be a list of steps (one `- id: …` per step), got {Describe(node)}");
            return result.AsReadOnly();
        }
        if (sequence.Items.Count == 0)
        {
            d.Error(node, "steps", "`steps` is empty; add at least one step");
            return result.AsReadOnly();
        }
        if (sequence.Items.Count > RunbookLimits.MaxSteps)
        {
            d.Error(node, "steps", $"a runbook has at most {RunbookLimits.MaxSteps} steps, and this one has {sequence.Items.Count}; split it into several runbooks");
        }

        IndexSteps(sequence);
        for (var i = 0; i < sequence.Items.Count && !d.IsFull; i++)
        {
            if (Step(sequence.Items[i], RunbookPath.Item("steps", i), i, parent: null) is { } step)
                result.Add(step);
        }
        return result.AsReadOnly();
    }

    private void IndexSteps(YSeq sequence)
    {
        for (var i = 0; i < sequence.Items.Count; i++)
        {
            if (sequence.Items[i] is not YMap map)
                continue;
            string? id = null;
            HashSet<string> outputs = new(StringComparer.Ordinal);
            foreach (var entry in map.Entries)
            {
                if (entry.Key.Value == "id" && entry.Value is YScalar { IsNull: false } idNode && id is null)
                    id = idNode.Value;
                else if (entry.Key.Value == "outputs" && entry.Value is YMap outputMap)
                    outputs.UnionWith(outputMap.Entries.Select(e => e.Key.Value));
            }
            if (id is not null)
                stepTable.TryAdd(id, new StepInfo(i, outputs));
        }
    }

    /// <summary>Checks one step (or, with <paramref name="parent"/>, the rollback of that step).</summary>
    private StepDefinition? Step(YNode node, string path, int index, (string Id, string Name)? parent)
    {
        var isRollback = parent is not null;
        if (node is not YMap map)
        {
            d.Error(node, path, isRollback
                ? $"`rollback` must be a mapping with an `action` and that action's fields, such as `{{ action: shell, run: ./undo.sh }}`, got {Describe(node)}"
                : $"each step must be a mapping with `id`, `name`, `action` and that action's fields, got {Describe(node)}");
            return null;
        }

        // The action decides which keys are allowed, so read it first.
        string? action = null;
        foreach (var entry in map.Entries)
        {
            if (entry.Key.Value == "action" && entry.Value is YScalar { IsNull: false } actionNode && ActionKeys.ContainsKey(actionNode.Value))
            {
                action = actionNode.Value;
                break;
            }
        }

        var what = action is null
            ? (isRollback ? "a rollback" : "a step")
            : $"{Article(action)} `{action}` {(isRollback ? "rollback" : "step")}";
        var m = CheckKeys(map, path, what, StepKeySets[(action, isRollback)], key => ExplainStepKey(key, action, isRollback));

        string id;
        if (isRollback)
        {
            id = parent!.Value.Id + ".rollback";
        }
        else
        {
            id = Text(m, "id", required: true, "the step has no `id`; add a short unique slug such as `id: deploy`") ?? "";
            if (id.Length > 0 && m["id"] is { } idNode)
            {
                if (!TemplateReferences.IsStepId(id))
                {
                    d.Error(idNode, m.PathOf("id"),
                        $"`id` must be 1 to 64 lowercase letters, digits, '_' or '-', starting with a letter or digit, got {Describe(idNode)}");
                }
                else if (stepTable.TryGetValue(id, out var first) && first.Index != index)
                {
                    d.Error(idNode, m.PathOf("id"), $"the step id `{id}` is already used by steps[{first.Index}]; step ids must be unique");
                }
            }
        }

        var name = Text(m, "name", required: false) is { Length: > 0 } given && !string.IsNullOrWhiteSpace(given)
            ? given
            : isRollback ? $"Roll back {parent!.Value.Name}" : id;
        var description = Text(m, "description", required: false);

        var actionText = Text(m, "action", required: true,
            $"{(isRollback ? "the rollback" : "the step")} has no `action`; add one of: {string.Join(", ", StepActions.All)}");
        if (actionText is not null && action is null)
        {
            d.Error(m["action"]!, m.PathOf("action"),
                $"`action` must be one of {string.Join(", ", StepActions.All)}, got {Describe(m["action"]!)}{Suggestions.DidYouMean(actionText, StepActions.All, ActionAliases)}");
        }
        if (isRollback && action == StepActions.Manual)
        {
            // A rollback runs after a failure, with no one asked: the run cannot wait for a person there.
            d.Error(m["action"]!, m.PathOf("action"),
                $"a rollback cannot be a manual step: a rollback runs unattended; undo the step with one of {string.Join(", ", StepActions.All.Where(a => a != StepActions.Manual))}, or leave `rollback` out");
        }

        var timeout = Duration(m, "timeout", allowZero: false);
        var retry = Retry(m);
        var validate = Validate(m);
        var required = isRollback ? true : Boolean(m, "required") ?? true;
        var outputs = isRollback ? ReadOnlyDictionary<string, string>.Empty : Outputs(m);

        var noun = isRollback ? "rollback" : "step";
        var details = action switch
        {
            StepActions.Shell => Shell(m, noun),
            StepActions.Http => Http(m, noun),
            StepActions.Ssm => Ssm(m, noun),
            StepActions.SsmAutomation => SsmAutomation(m, noun),
            StepActions.Lambda => Lambda(m, noun),
            StepActions.Manual => Manual(m, noun),
            StepActions.Wait => new WaitAction(Duration(m, "duration", allowZero: false, required: true,
                $"a `wait` {noun} needs `duration`, such as `duration: 5m`") ?? TimeSpan.Zero),
            _ => (StepAction?)null,
        };

        // Templates, once the step's own shape is known. A rollback may also use the outputs of its own step.
        var scope = isRollback ? TemplateScope.RollbackOf(index) : TemplateScope.Step(index);
        foreach (var (key, entry) in m.Entries)
        {
            if (!StepKeySets[(action, isRollback)].Contains(key))
                continue;
            if (key == "validate")
                CheckValidateTemplates(entry.Value, m.PathOf(key), scope);
            else if (!UntemplatedStepKeys.Contains(key))
                CheckTemplatesDeep(entry.Value, m.PathOf(key), scope);
            if (action == StepActions.Shell && key == "run" && entry.Value is YScalar run)
                CheckShellTemplates(run, m.PathOf(key));
        }

        StepDefinition? rollback = null;
        if (m["rollback"] is { } rollbackNode && !isRollback)
            rollback = Step(rollbackNode, m.PathOf("rollback").ToString(), index, (id, name));

        if (details is null || action is null || (isRollback && action == StepActions.Manual))
            return null;
        return new StepDefinition(id, name, description, action, details, timeout, retry, validate, required, rollback, outputs);
    }

    private static string? ExplainStepKey(string key, string? action, bool isRollback)
    {
        if (isRollback && RollbackOnlyRefused.Contains(key))
        {
            return key switch
            {
                "id" => "; a rollback has no `id` of its own, it belongs to its step",
                "rollback" => "; a rollback cannot have a rollback of its own",
                _ => $"; a rollback takes no `{key}`",
            };
        }
        if (action is null)
            return null;
        var owners = ActionKeys.Where(pair => pair.Key != action && pair.Value.Contains(key)).Select(pair => $"`{pair.Key}`").ToArray();
        return owners.Length > 0 ? $"; it belongs to {string.Join(" and ", owners)} steps" : null;
    }

    private RetryPolicy? Retry(MapView m)
    {
        if (Mapping(m, "retry", " such as `{ attempts: 3, backoff: 10s }`") is not { } map)
            return null;
        var retry = CheckKeys(map, m.PathOf("retry").ToString(), "`retry`", RetryKeys);
        var attempts = IntegerInRange(retry, "attempts", 1, 20, "`attempts` must be between 1 and 20 (the first try included), got {0}",
            required: true, missing: "`retry` needs `attempts`: how many times to try at most, the first try included (1 to 20)");
        var backoff = Duration(retry, "backoff", allowZero: true);
        return attempts is null ? null : new RetryPolicy(attempts.Value, backoff ?? TimeSpan.Zero);
    }

    private ValidationRule? Validate(MapView m)
    {
        if (Mapping(m, "validate", " such as `{ output_contains: \"done\" }`") is not { } map)
            return null;
        var v = CheckKeys(map, m.PathOf("validate").ToString(), "`validate`", ValidateKeys);
        var outputContains = Text(v, "output_contains", required: false);
        string? regex = null;
        if (Text(v, "regex", required: false) is { } pattern && CheckRegex(v["regex"]!, v.PathOf("regex"), "regex", pattern))
            regex = pattern;
        var exitCode = IntegerInRange(v, "exit_code", 0, 255, "`exit_code` must be between 0 and 255, got {0}");

        string? jsonPath = null;
        string? jsonEquals = null;
        if (Mapping(v, "json", " such as `{ path: $.status, equals: ok }`") is { } jsonMap)
        {
            var json = CheckKeys(jsonMap, v.PathOf("json").ToString(), "`validate.json`", JsonCheckKeys);
            jsonPath = Text(json, "path", required: true, "`validate.json` needs a `path` such as `$.status` or `$.items[0].state`");
            if (jsonPath is not null && !JsonPathSyntax().IsMatch(jsonPath))
            {
                d.Error(json["path"]!, json.PathOf("path"),
                    $"`path` must be a simple JSON path such as `$.status` or `$.items[0].state`, got {Describe(json["path"]!)}");
            }
            if (json["equals"] is { } equalsNode)
                jsonEquals = AnyScalar(equalsNode, json.PathOf("equals"), "equals");
        }

        if (v.Entries.Count == 0)
            d.Error(map, m.PathOf("validate"), "`validate` has no checks; add `output_contains`, `regex`, `exit_code` or `json`, or remove it");
        return new ValidationRule(outputContains, regex, exitCode, jsonPath, jsonEquals);
    }

    private ReadOnlyDictionary<string, string> Outputs(MapView m)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Mapping(m, "outputs", " of output names to regular expressions, such as `{ version: 'version=(\\S+)' }`") is not { } map)
            return result.AsReadOnly();
        var view = CheckKeys(map, m.PathOf("outputs").ToString(), "`outputs`", allowed: null);
        foreach (var (name, entry) in view.Entries)
        {
            var path = view.PathOf(name);
            if (!TemplateReferences.IsIdentifier(name))
            {
                d.Error(entry.Key, path, $"output names are letters, digits and '_', starting with a letter or '_', got {Code(name)}{IdentifierHint(name)}");
                continue;
            }
            if (Text(entry.Value, path, name) is { } pattern && CheckRegex(entry.Value, path, name, pattern))
                result[name] = pattern;
        }
        return result.AsReadOnly();
    }

    private static bool IsEnvironmentName(string name) => TemplateReferences.IsIdentifier(name);

    private ShellAction Shell(MapView m, string noun)
    {
        var run = Text(m, "run", required: true, $"a `shell` {noun} needs `run`: the command to run") ?? "";
        var workingDirectory = Text(m, "working_directory", required: false);
        var env = ScalarMap(m, "env", "`env`", " of variable names to values, such as `{ LOG_LEVEL: debug }`",
            IsEnvironmentName, "is not an environment variable name: use letters, digits and '_', not starting with a digit");
        var stream = ShellStream.Stdout;
        if (m["stream"] is YScalar { IsNull: false } streamNode)
        {
            var text = Text(m, "stream", required: false) ?? "";
            stream = text switch { "stderr" => ShellStream.Stderr, "both" => ShellStream.Both, _ => ShellStream.Stdout };
            if (text is not ("stdout" or "stderr" or "both"))
                d.Error(streamNode, m.PathOf("stream"), $"`stream` must be one of stdout, stderr, both (what validate and outputs read), got {Describe(streamNode)}{Suggestions.DidYouMean(text, ["stdout", "stderr", "both"])}");
        }
        return new ShellAction(run, workingDirectory, env, stream);
    }

    private HttpAction Http(MapView m, string noun)
    {
        var method = Text(m, "method", required: false) ?? "GET";
        if (m["method"] is YScalar methodNode && !HttpMethods.Contains(method, StringComparer.Ordinal) && !methodNode.IsNull)
        {
            var upper = method.ToUpperInvariant();
            var hint = HttpMethods.Contains(upper, StringComparer.Ordinal) ? $"; write it in capitals: `{upper}`" : Suggestions.DidYouMean(method, HttpMethods);
            d.Error(methodNode, m.PathOf("method"), $"`method` must be one of {string.Join(", ", HttpMethods)}, got {Describe(methodNode)}{hint}");
        }

        var url = Text(m, "url", required: true, $"an `http` {noun} needs `url`, such as `url: https://example.com/health`") ?? "";
        if (url.Length > 0 && !url.StartsWith("{{", StringComparison.Ordinal))
        {
            // Templates may fill in parts of the URL; check the shape with placeholders in their place.
            var probe = TemplateReferences.Replace(url, _ => "x");
            if (!Uri.TryCreate(probe, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                d.Error(m["url"]!, m.PathOf("url"), $"`url` must be an absolute http:// or https:// URL, got {Describe(m["url"]!)}");
        }

        var headers = ScalarMap(m, "headers", "`headers`", " of header names to values, such as `{ Accept: application/json }`");

        string? body = null;
        JsonElement? jsonBody = null;
        switch (m["body"])
        {
            case null:
                break;
            case YScalar bodyScalar:
                body = AnyScalar(bodyScalar, m.PathOf("body"), "body");
                break;
            case var structured:
                CheckFreeForm(structured, m.PathOf("body").ToString());
                jsonBody = YamlJson.ToJsonElement(structured);
                break;
        }

        var expectStatus = new List<int>();
        if (m["expect_status"] is { } statusNode)
        {
            var items = statusNode is YSeq statusList ? statusList.Items : [statusNode];
            if (items.Count == 0)
                d.Error(statusNode, m.PathOf("expect_status"), "`expect_status` is an empty list; give at least one status code or remove it");
            for (var i = 0; i < items.Count; i++)
            {
                var path = statusNode is YSeq ? RunbookPath.Item(m.PathOf("expect_status").ToString(), i) : m.PathOf("expect_status");
                if (Integer(items[i], path, "expect_status") is not { } code)
                    continue;
                if (code is < 100 or > 599)
                    d.Error(items[i], path, $"`expect_status` must hold HTTP status codes between 100 and 599, got {code}");
                else
                    expectStatus.Add((int)code);
            }
        }

        return new HttpAction(method, url, headers, body, jsonBody, expectStatus.AsReadOnly());
    }

    private SsmAction Ssm(MapView m, string noun)
    {
        var document = Text(m, "document", required: true, $"an `ssm` {noun} needs `document`: the SSM command document to run, such as `AWS-RunShellScript`") ?? "";
        var targets = ListMap(m, "targets", "`targets`", " of target keys to values, such as `{ \"tag:App\": web }` or `{ InstanceIds: [i-0abc] }`");
        var parameters = ListMap(m, "parameters", "`parameters`", " of document parameter names to values, such as `{ commands: [\"uptime\"] }`");
        var maxConcurrency = SsmLimit(m, "max_concurrency", SsmConcurrencySyntax(), "a number of instances from 1, or a percentage from 1% to 100%, such as `10` or `25%`");
        var maxErrors = SsmLimit(m, "max_errors", SsmErrorsSyntax(), "a number of failed instances from 0, or a percentage from 0% to 100%, such as `0` or `10%`");
        var comment = Text(m, "comment", required: false);
        if (comment is not null && TemplateReferences.Find(comment).Count == 0 && comment.Length > SsmAction.MaxCommentLength)
            d.Error(m["comment"]!, m.PathOf("comment"), $"`comment` is sent to SSM, which takes at most {SsmAction.MaxCommentLength} characters, and this one has {comment.Length}");
        return new SsmAction(document, targets, parameters, maxConcurrency, maxErrors, comment);
    }

    /// <summary>A max_concurrency or max_errors value: a whole number or a percentage, written bare or quoted.</summary>
    private string? SsmLimit(MapView m, string key, Regex syntax, string what)
    {
        if (m[key] is not { } node)
            return null;
        if (AnyScalar(node, m.PathOf(key), key) is not { } text)
            return null;
        if (!syntax.IsMatch(text.Trim()))
        {
            d.Error(node, m.PathOf(key), $"`{key}` must be {what}, got {Describe(node)}");
            return null;
        }
        return text.Trim();
    }

    private SsmAutomationAction SsmAutomation(MapView m, string noun)
    {
        var document = Text(m, "document", required: true, $"an `ssm_automation` {noun} needs `document`: the Automation document to start, such as `AWS-RestartEC2Instance`") ?? "";
        var parameters = ListMap(m, "parameters", "`parameters`", " of document parameter names to values, such as `{ InstanceId: i-0abc }`");
        return new SsmAutomationAction(document, parameters);
    }

    private ManualAction Manual(MapView m, string noun)
    {
        var instructions = Text(m, "instructions", required: true,
            $"a `manual` {noun} needs `instructions`: what the operator should do before continuing") ?? "";
        var role = Text(m, "role", required: false) ?? ManualAction.DefaultRole;
        if (m["role"] is YScalar { IsNull: false } roleNode && !Roles.Contains(role, StringComparer.Ordinal))
        {
            d.Error(roleNode, m.PathOf("role"),
                $"`role` must be one of the portal's roles ({string.Join(", ", Roles)}), got {Describe(roleNode)}{Suggestions.DidYouMean(role, Roles)}");
        }
        return new ManualAction(instructions, role);
    }

    private LambdaAction Lambda(MapView m, string noun)
    {
        var function = Text(m, "function", required: true, $"a `lambda` {noun} needs `function`: the name or ARN of the function to invoke") ?? "";
        JsonElement? payload = null;
        if (m["payload"] is { } payloadNode)
        {
            CheckFreeForm(payloadNode, m.PathOf("payload").ToString());
            payload = YamlJson.ToJsonElement(payloadNode);
        }
        var qualifier = Text(m, "qualifier", required: false);
        var logTail = false;
        if (m["log_type"] is { } logNode && Text(m, "log_type", required: false) is { } logType)
        {
            logTail = string.Equals(logType, "tail", StringComparison.OrdinalIgnoreCase);
            if (!logTail && !string.Equals(logType, "none", StringComparison.OrdinalIgnoreCase))
                d.Error(logNode, m.PathOf("log_type"), $"`log_type` must be `tail` (the function's last 4 KB of log go into the step's log) or `none`, got {Describe(logNode)}{Suggestions.DidYouMean(logType, ["tail", "none"])}");
        }
        return new LambdaAction(function, payload, qualifier, logTail);
    }
}
