using System.Collections.ObjectModel;
using System.Globalization;
using System.Text.RegularExpressions;

namespace RunbookPortal.Engine.Runbooks;

internal sealed partial class RunbookAnalyzer
{
    private static readonly KeySet TopLevelKeys = new(
        "apiVersion", "name", "title", "description", "type", "tags", "owner", "prerequisites",
        "parameters", "approval", "concurrency", "steps");

    private static readonly KeySet ParameterKeys = new("type", "required", "default", "allowed", "pattern", "min", "max", "description", "multiline", "allow_leading_dash", "from");
    private static readonly KeySet ApprovalKeys = new("required_approvals", "approver_role", "when", "expires_after");
    private static readonly KeySet ConcurrencyKeys = new("key", "limit");

    /// <summary>The portal's roles (DESIGN); an approver role must be one of them.</summary>
    private static readonly string[] Roles = ["Admin", "Author", "Operator", "Approver", "Auditor"];

    private static readonly Dictionary<string, string> TypeAliases = new(StringComparer.Ordinal)
    {
        ["deploy"] = RunbookTypes.Deployment,
        ["incident"] = RunbookTypes.IncidentResponse,
        ["incident-response"] = RunbookTypes.IncidentResponse,
        ["backup"] = RunbookTypes.BackupRestore,
        ["restore"] = RunbookTypes.BackupRestore,
        ["backup-restore"] = RunbookTypes.BackupRestore,
        ["scale"] = RunbookTypes.Scaling,
        ["monitor"] = RunbookTypes.Monitoring,
    };

    private static readonly Dictionary<string, string> ParameterTypeAliases = new(StringComparer.Ordinal)
    {
        ["integer"] = "int",
        ["number"] = "int",
        ["long"] = "int",
        ["boolean"] = "bool",
        ["text"] = "string",
        ["str"] = "string",
        ["password"] = "secret",
    };

    [GeneratedRegex("^[a-z0-9][a-z0-9-]{1,62}$", RegexOptions.CultureInvariant)]
    private static partial Regex NameSlug();

    /// <summary>Declared parameters by name, including those whose declaration has problems (so templates do not cascade).</summary>
    private readonly Dictionary<string, ParameterDefinition> parameters = new(StringComparer.Ordinal);

    public RunbookDefinition? Analyze(YNode root)
    {
        if (root is YScalar { IsNull: true })
        {
            d.Error(SourcePosition.DocumentStart, "", "the document is empty; start with `apiVersion: runbooks/v1`, then `name`, `title`, `type` and `steps`");
            return null;
        }
        if (root is not YMap map)
        {
            d.Error(root, "", $"a runbook is a mapping of keys such as `apiVersion`, `name`, `title`, `type` and `steps`, got {Describe(root)}");
            return null;
        }

        var top = CheckKeys(map, "", "a runbook", TopLevelKeys);

        var apiVersion = Text(top, "apiVersion", required: true, $"`apiVersion` is missing; add `apiVersion: {RunbookDefinition.CurrentApiVersion}` as the first line");
        if (apiVersion is not null && apiVersion != RunbookDefinition.CurrentApiVersion)
            d.Error(top["apiVersion"]!, "apiVersion", $"`apiVersion` must be `{RunbookDefinition.CurrentApiVersion}`, got {Describe(top["apiVersion"]!)}");

        var name = Text(top, "name", required: true, "`name` is missing; add a slug such as `name: web-app-deploy`");
        if (name is not null && !NameSlug().IsMatch(name))
        {
            d.Error(top["name"]!, "name",
                $"`name` must be a slug of 2 to 63 lowercase letters, digits and '-', starting with a letter or digit, got {Describe(top["name"]!)}{SlugHint(name)}");
        }

        var title = Text(top, "title", required: true, "`title` is missing; add a short title for people, such as `title: Web Application Deployment`");
        var description = Text(top, "description", required: false);

        var type = Text(top, "type", required: true, $"`type` is missing; add one of: {string.Join(", ", RunbookTypes.All)}");
        if (type is not null && !RunbookTypes.All.Contains(type))
        {
            d.Error(top["type"]!, "type",
                $"`type` must be one of {string.Join(", ", RunbookTypes.All)}, got {Describe(top["type"]!)}{Suggestions.DidYouMean(type, RunbookTypes.All, TypeAliases)}");
        }

        var tags = TextList(top, "tags", "tag") ?? ReadOnlyCollection<string>.Empty;
        WarnDuplicates(top, "tags", tags, "tag");
        var owner = Text(top, "owner", required: false);
        var prerequisites = TextList(top, "prerequisites", "prerequisite") ?? ReadOnlyCollection<string>.Empty;

        var parameterList = Parameters(top);
        var approval = Approval(top);
        var concurrency = Concurrency(top);
        var steps = Steps(top);

        if (d.HasErrors)
            return null;

        return new RunbookDefinition(
            apiVersion!, name!, title!, description, type!, tags, owner, prerequisites,
            parameterList, approval, concurrency, steps);
    }

    private static string SlugHint(string value)
    {
        var slug = Regex.Replace(value.Trim().ToLowerInvariant(), "[^a-z0-9]+", "-", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)).Trim('-');
        return slug.Length is >= 2 and <= 63 && slug != value ? $"; try '{slug}'" : "";
    }

    private void WarnDuplicates(MapView m, string key, IReadOnlyList<string> values, string what)
    {
        if (m[key] is not YSeq sequence)
            return;
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var index = 0;
        foreach (var item in sequence.Items)
        {
            if (item is YScalar scalar && !seen.Add(scalar.Value) && values.Contains(scalar.Value))
                d.Warning(item, RunbookPath.Item(m.PathOf(key).ToString(), index), $"the {what} '{Preview(scalar.Value)}' is listed twice");
            index++;
        }
    }

    private ReadOnlyCollection<ParameterDefinition> Parameters(MapView top)
    {
        var result = new List<ParameterDefinition>();
        if (Mapping(top, "parameters", ", one entry per parameter such as `version: { type: string, required: true }`") is not { } map)
            return result.AsReadOnly();

        var view = CheckKeys(map, "parameters", "`parameters`", allowed: null);
        foreach (var (name, entry) in view.Entries)
        {
            var path = view.PathOf(name).ToString();
            if (!TemplateReferences.IsIdentifier(name))
            {
                d.Error(entry.Key, path,
                    $"parameter names are letters, digits and '_', starting with a letter or '_' (they are used as {{{{ name }}}}), got {Code(name)}{IdentifierHint(name)}");
                continue;
            }
            if (name == "steps")
            {
                d.Error(entry.Key, path, "`steps` cannot be a parameter name: {{ steps.<id>.outputs.<name> }} refers to step outputs; choose another name");
                continue;
            }
            var parameter = Parameter(name, entry.Value, path);
            parameters[name] = parameter;
            result.Add(parameter);
        }
        return result.AsReadOnly();
    }

    private static string IdentifierHint(string name)
    {
        var fixedName = name.Replace('-', '_').Replace(' ', '_');
        return fixedName != name && TemplateReferences.IsIdentifier(fixedName) ? $"; try `{fixedName}`" : "";
    }

    private ParameterDefinition Parameter(string name, YNode node, string path)
    {
        if (node is not YMap map)
        {
            d.Error(node, path, $"declare the parameter `{name}` as a mapping such as `{{ type: string, required: true }}`, got {Describe(node)}");
            return new ParameterDefinition(name, ParameterType.String, false, null, null, null, null, null, null);
        }
        var m = CheckKeys(map, path, "a parameter", ParameterKeys);

        var type = ParameterType.String;
        var typeIsValid = true;
        if (Text(m, "type", required: false) is { } typeName && !ParameterTypes.TryParse(typeName, out type))
        {
            typeIsValid = false;
            d.Error(m["type"]!, m.PathOf("type"),
                $"`type` must be one of {string.Join(", ", ParameterTypes.All)}, got {Describe(m["type"]!)}{Suggestions.DidYouMean(typeName, ParameterTypes.All, ParameterTypeAliases)}");
        }

        var required = Boolean(m, "required") ?? false;
        var description = Text(m, "description", required: false);

        string? pattern = null;
        if (Text(m, "pattern", required: false) is { } patternText)
        {
            if (typeIsValid && type is ParameterType.Int or ParameterType.Bool)
                d.Error(m["pattern"]!, m.PathOf("pattern"), $"`pattern` applies to string and secret parameters only, and `{name}` is {ParameterTypes.NameOf(type)}");
            else if (CheckRegex(m["pattern"]!, m.PathOf("pattern"), "pattern", patternText))
                pattern = patternText;
        }

        long? min = Integer(m, "min", required: false);
        long? max = Integer(m, "max", required: false);
        foreach (var bound in new[] { "min", "max" })
        {
            if (m[bound] is { } boundNode && typeIsValid && type != ParameterType.Int)
                d.Error(boundNode, m.PathOf(bound), $"`{bound}` applies to int parameters only, and `{name}` is {ParameterTypes.NameOf(type)}");
        }
        if (type != ParameterType.Int)
            (min, max) = (null, null);
        if (min is not null && max is not null && max < min)
        {
            d.Error(m["max"]!, m.PathOf("max"), $"`max` ({max}) is less than `min` ({min}); no value could fit");
            (min, max) = (null, null);
        }

        var multiline = Boolean(m, "multiline") ?? false;
        var allowLeadingDash = Boolean(m, "allow_leading_dash") ?? false;
        foreach (var flag in new[] { "multiline", "allow_leading_dash" })
        {
            if (m[flag] is { } flagNode && typeIsValid && type != ParameterType.String)
                d.Error(flagNode, m.PathOf(flag), $"`{flag}` applies to string parameters only, and `{name}` is {ParameterTypes.NameOf(type)}");
        }

        // Allowed values: checked against the type, pattern and bounds like any value.
        List<string>? allowed = null;
        var shape = new ParameterDefinition(name, typeIsValid ? type : ParameterType.String, required, null, null, pattern, min, max, description)
        {
            Multiline = multiline && type == ParameterType.String,
            AllowLeadingDash = allowLeadingDash && type == ParameterType.String,
        };
        if (m["allowed"] is { } allowedNode)
        {
            if (allowedNode is YSeq { Items.Count: 0 })
            {
                d.Error(allowedNode, m.PathOf("allowed"), "`allowed` is an empty list, so no value would fit; list the allowed values or remove it");
            }
            else if (allowedNode is not YSeq sequence)
            {
                d.Error(allowedNode, m.PathOf("allowed"), $"`allowed` must be a list of values, e.g. `[staging, production]`, got {Describe(allowedNode)}");
            }
            else
            {
                allowed = [];
                for (var i = 0; i < sequence.Items.Count; i++)
                {
                    var itemPath = RunbookPath.Item(m.PathOf("allowed").ToString(), i);
                    if (AnyScalar(sequence.Items[i], itemPath, "allowed value") is not { } value)
                        continue;
                    if (typeIsValid && shape.CheckValue(value) is { } problem)
                        d.Error(sequence.Items[i], itemPath, $"the allowed value '{Preview(value)}' {problem}");
                    else if (allowed.Contains(value))
                        d.Warning(sequence.Items[i], itemPath, $"the allowed value '{Preview(value)}' is listed twice");
                    allowed.Add(value);
                }
            }
        }

        var definition = shape with { Allowed = allowed?.AsReadOnly() };

        string? defaultValue = null;
        if (m["default"] is { } defaultNode && AnyScalar(defaultNode, m.PathOf("default"), "default") is { } value2)
        {
            defaultValue = value2;
            if (typeIsValid && type == ParameterType.Int && defaultNode is YScalar { IsPlain: true } && ParameterDefinition.TryParseInt(value2, out var number))
                defaultValue = number.ToString(CultureInfo.InvariantCulture);
            if (typeIsValid && type == ParameterType.Bool && ParameterDefinition.TryParseBool(value2, out var flag))
                defaultValue = flag ? "true" : "false";
            if (typeIsValid && definition.CheckValue(defaultValue) is { } problem)
            {
                var shown = type == ParameterType.Secret ? "" : $" '{Preview(value2)}'";
                d.Error(defaultNode, m.PathOf("default"), $"the default{shown} {problem}; change the default or the declaration");
            }
            if (typeIsValid && type == ParameterType.Secret)
                d.Warning(defaultNode, m.PathOf("default"), $"`{name}` is a secret, but its default is written in the runbook for anyone to read; remove the default");
        }

        string? fromSsm = null;
        if (m["from"] is { } fromNode && Text(m, "from", required: false) is { } from)
        {
            if (typeIsValid && type != ParameterType.Secret)
                d.Error(fromNode, m.PathOf("from"), $"`from` applies to secret parameters only, and `{name}` is {ParameterTypes.NameOf(type)}");
            else if (!ParameterDefinition.TryParseSsmSource(from, out var ssmName))
                d.Error(fromNode, m.PathOf("from"), $"`from` must name an SSM Parameter Store parameter such as `ssm:/prod/db/password` (letters, digits and _ . - / after `ssm:/`), got {Describe(fromNode)}");
            else
                fromSsm = ssmName;
            if (m["default"] is { } fromDefault)
                d.Error(fromDefault, m.PathOf("default"), $"`{name}` comes from Parameter Store (`from`), so it takes no `default`; remove one of them");
        }

        return definition with { Default = fromSsm is null ? defaultValue : null, FromSsm = fromSsm };
    }

    private ApprovalPolicy? Approval(MapView top)
    {
        if (Mapping(top, "approval", " such as `{ required_approvals: 1, approver_role: Approver }`") is not { } map)
            return null;
        var m = CheckKeys(map, "approval", "`approval`", ApprovalKeys);

        var requiredApprovals = IntegerInRange(m, "required_approvals", 1, 20,
            "`required_approvals` must be between 1 and 20, got {0}; remove `approval` if no sign-off is needed") ?? 1;

        var role = Text(m, "approver_role", required: false) ?? ApprovalPolicy.DefaultApproverRole;
        if (m["approver_role"] is { } roleNode && !Roles.Contains(role, StringComparer.Ordinal) && roleNode is YScalar { IsNull: false })
        {
            d.Error(roleNode, m.PathOf("approver_role"),
                $"`approver_role` must be one of the portal's roles ({string.Join(", ", Roles)}), got {Describe(roleNode)}{Suggestions.DidYouMean(role, Roles)}");
        }

        var when = new Dictionary<string, string>(StringComparer.Ordinal);
        if (Mapping(m, "when", " of parameter names to values, such as `{ environment: production }`") is { } whenMap)
        {
            var view = CheckKeys(whenMap, m.PathOf("when").ToString(), "`approval.when`", allowed: null);
            foreach (var (parameterName, entry) in view.Entries)
            {
                var path = view.PathOf(parameterName);
                if (!parameters.TryGetValue(parameterName, out var parameter))
                {
                    d.Error(entry.Key, path,
                        $"`approval.when` names {Code(parameterName)}, which is not a declared parameter{SuggestParameter(parameterName, "declare it under `parameters`")}");
                    continue;
                }
                if (AnyScalar(entry.Value, path, parameterName) is not { } value)
                    continue;
                if (parameter.Type == ParameterType.Secret)
                {
                    d.Error(entry.Key, path, $"`approval.when` cannot depend on the secret parameter `{parameterName}`");
                    continue;
                }
                if (parameter.CheckValue(value) is { } problem)
                {
                    d.Error(entry.Value, path, $"`approval.when` gives `{parameterName}` the value '{Preview(value)}', which {problem}, so this approval would never apply");
                    continue;
                }
                when[parameterName] = value;
            }
        }

        var expiresAfter = Duration(m, "expires_after", allowZero: false);
        return new ApprovalPolicy(requiredApprovals, role, when.AsReadOnly(), expiresAfter);
    }

    private ConcurrencyPolicy? Concurrency(MapView top)
    {
        if (Mapping(top, "concurrency", " such as `{ key: \"{{ environment }}\", limit: 1 }`") is not { } map)
            return null;
        var m = CheckKeys(map, "concurrency", "`concurrency`", ConcurrencyKeys);
        var key = Text(m, "key", required: true, "`concurrency` needs a `key`: executions with the same key share the limit, e.g. `key: \"{{ environment }}\"`");
        if (key is not null && m["key"] is YScalar keyNode)
        {
            CheckTemplates(keyNode, m.PathOf("key"), TemplateScope.ParametersOnly);
            // The text around the templates alone has this length; values only add to it.
            var fixedLength = new ConcurrencyPolicy(key, 1).Render(new Dictionary<string, string>()).Length;
            if (fixedLength > ConcurrencyPolicy.MaxKeyLength)
                d.Error(keyNode, m.PathOf("key"), fixedLength == key.Length
                    ? $"the concurrency key is {fixedLength} characters long; a key may have at most {ConcurrencyPolicy.MaxKeyLength}"
                    : $"the concurrency key is {fixedLength} characters long before any value is filled in; a rendered key may have at most {ConcurrencyPolicy.MaxKeyLength}");
        }
        var limit = IntegerInRange(m, "limit", 1, 1000, "`limit` must be at least 1 (and at most 1000), got {0}") ?? 1;
        return new ConcurrencyPolicy(key ?? "", limit);
    }

    private string SuggestParameter(string name, string otherwise)
    {
        var suggestion = Suggestions.Closest(name, parameters.Keys);
        return suggestion is not null ? $"; did you mean `{suggestion}`?" : $"; {otherwise}";
    }
}
