using RunbookPortal.Engine.Execution.Steps;

namespace RunbookPortal.Engine.Runbooks;

internal sealed partial class RunbookAnalyzer
{
    /// <summary>What templates may refer to at one place of the document.</summary>
    private readonly record struct TemplateScope(int StepIndex, bool InRollback, bool ParametersOnlyScope)
    {
        /// <summary>Before any step runs (concurrency key): parameters only.</summary>
        public static TemplateScope ParametersOnly => new(-1, false, true);

        /// <summary>In step <paramref name="index"/>: parameters and outputs of the steps before it.</summary>
        public static TemplateScope Step(int index) => new(index, false, false);

        /// <summary>In the rollback of step <paramref name="index"/>: also that step's own outputs.</summary>
        public static TemplateScope RollbackOf(int index) => new(index, true, false);
    }

    private void CheckTemplatesDeep(YNode node, LazyPath lazyPath, TemplateScope scope)
    {
        switch (node)
        {
            case YScalar scalar:
                CheckTemplates(scalar, lazyPath, scope);
                break;
            case YMap map:
            {
                var path = lazyPath.ToString();
                foreach (var entry in map.Entries)
                    CheckTemplatesDeep(entry.Value, LazyPath.Child(path, entry.Key.Value), scope);
                break;
            }
            case YSeq sequence:
            {
                var path = lazyPath.ToString();
                for (var i = 0; i < sequence.Items.Count; i++)
                    CheckTemplatesDeep(sequence.Items[i], LazyPath.Item(path, i), scope);
                break;
            }
        }
    }

    /// <summary>In `validate`, only the texts compared with the output are templated, not the regular expression.</summary>
    private void CheckValidateTemplates(YNode node, LazyPath lazyPath, TemplateScope scope)
    {
        if (node is not YMap map)
            return;
        var path = lazyPath.ToString();
        foreach (var entry in map.Entries)
        {
            var childPath = RunbookPath.Child(path, entry.Key.Value);
            if (entry.Key.Value == "output_contains" && entry.Value is YScalar scalar)
                CheckTemplates(scalar, childPath, scope);
            else if (entry.Key.Value == "json" && entry.Value is YMap json)
            {
                foreach (var jsonEntry in json.Entries)
                {
                    if (jsonEntry.Key.Value == "equals" && jsonEntry.Value is YScalar equals)
                        CheckTemplates(equals, RunbookPath.Child(childPath, "equals"), scope);
                }
            }
        }
    }

    private void CheckTemplates(YScalar scalar, LazyPath path, TemplateScope scope)
    {
        if (!scalar.Value.Contains("{{", StringComparison.Ordinal))
            return;
        foreach (var reference in TemplateReferences.Find(scalar.Value))
        {
            var shown = $"`{Preview(reference.Text(scalar.Value), 60)}`";
            switch (reference.Kind)
            {
                case TemplateReferenceKind.Parameter:
                    if (!parameters.TryGetValue(reference.ParameterName!, out var parameter))
                    {
                        d.Error(Locate(scalar, reference), path,
                            $"{shown} names no declared parameter{SuggestParameter(reference.ParameterName!, $"declare `{reference.ParameterName}` under `parameters`")}");
                    }
                    else if (scope.ParametersOnlyScope && parameter.Type == ParameterType.Secret)
                    {
                        d.Error(Locate(scalar, reference), path,
                            $"{shown} is a secret: the concurrency key is stored and shown in the clear, so it cannot use `{reference.ParameterName}`");
                    }
                    break;
                case TemplateReferenceKind.StepOutput:
                    if (StepOutputProblem(reference, scope) is { } problem)
                        d.Error(Locate(scalar, reference), path, $"{shown} {problem}");
                    break;
                case TemplateReferenceKind.Invalid:
                    d.Error(Locate(scalar, reference), path,
                        $"{shown} is not a template the portal understands; write `{{{{ parameter_name }}}}` or `{{{{ steps.<id>.outputs.<name> }}}}`, and write literal braces as `{{{{ '{{{{' }}}}`");
                    break;
                case TemplateReferenceKind.Unclosed:
                    d.Warning(Locate(scalar, reference), path,
                        "`{{` is not closed by `}}`, so it stays as written; close it, or write literal braces as `{{ '{{' }}`");
                    break;
            }
        }
    }

    /// <summary>
    /// In a shell command, a template where bash evaluates its value (arithmetic, after a backslash) or mixes it into a
    /// here-string or here-document must be an int or bool parameter: any other value could be run as code there.
    /// </summary>
    private void CheckShellTemplates(YScalar run, LazyPath path)
    {
        if (!run.Value.Contains("{{", StringComparison.Ordinal))
            return;
        foreach (var (reference, places) in ShellQuoting.Analyze(run.Value))
        {
            if (ReparsedBy(run.Value, reference.Index) is { } interpreter)
            {
                d.Warning(Locate(run, reference), path,
                    $"`{Preview(reference.Text(run.Value), 60)}` is handed to `{interpreter}`, which parses its arguments as a command again: there the value is code, not text. Pass it as an environment variable or a file instead, or make sure the parameter only allows safe values (`allowed`, `pattern`)");
            }
            if (places == TemplatePlaces.None)
                continue;
            if ((places & TemplatePlaces.NotExpanded) != 0)
            {
                d.Error(Locate(run, reference), path,
                    $"`{Preview(reference.Text(run.Value), 60)}` stands in a quoted here-document (such as `<<'EOF'`) or in a here-document's delimiter, where bash expands nothing, so the step would fail; write the delimiter without quotes (`<<EOF`), or use the environment variable instead");
                continue;
            }
            ParameterDefinition? parameter = null;
            if (reference.Kind == TemplateReferenceKind.Parameter && !parameters.TryGetValue(reference.ParameterName!, out parameter))
                continue; // reported as undeclared
            if (parameter is { Type: ParameterType.Int or ParameterType.Bool })
                continue;

            var where = (places & TemplatePlaces.Arithmetic) != 0
                ? "stands in an arithmetic context (`$(( ))`, `$[ ]`, `(( ))`, `let`, `declare -i`, `${name:offset}`, a `[[ ]]` test such as `-gt`, or an array subscript `a[…]`, also one named to `printf -v`, `unset`, `read` or `[ -v ]`), where bash evaluates the value as an expression, so a value such as `a[$(rm -rf ~)]` would run a command"
                : (places & TemplatePlaces.AfterBackslash) != 0
                    ? "stands right after a backslash, where bash would read the value's first character as escaped rather than as text"
                    : "stands where bash evaluates its value";
            var what = parameter is not null
                ? $"`{parameter.Name}` is a {parameter.TypeName} parameter: declare it `type: int` or `bool` (checked before the run), or use it as a plain word"
                : "a step output is text that is not checked: pass it on as a plain word instead";
            d.Error(Locate(run, reference), path, $"`{Preview(reference.Text(run.Value), 60)}` {where}; {what}");
        }
    }

    /// <summary>The interpreter the command around <paramref name="index"/> hands its words to, when it is one: eval, ssh, sh -c…</summary>
    private static string? ReparsedBy(string script, int index)
    {
        var start = script.LastIndexOfAny([';', '&', '|', '\n', '(', '`'], Math.Max(0, index - 1)) + 1;
        var match = Reparser().Match(script[start..index]);
        return match.Success ? match.Groups[1].Value.Trim() : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex(@"^\s*(?:sudo\s+(?:-\S+\s+)*)?(eval|ssh|(?:ba|da|z|k)?sh\s+(?:-\S*\s+)*-\S*c|su\s+(?:\S+\s+)*-c)\b")]
    private static partial System.Text.RegularExpressions.Regex Reparser();

    private string? StepOutputProblem(TemplateReference reference, TemplateScope scope)
    {
        if (scope.ParametersOnlyScope)
            return "cannot be used here: only parameters are known before the first step runs";
        var stepId = reference.StepId!;
        if (!stepTable.TryGetValue(stepId, out var step))
        {
            var suggestion = Suggestions.Closest(stepId, stepTable.Keys);
            return $"names no step `{stepId}`{(suggestion is not null ? $"; did you mean `{suggestion}`?" : "")}";
        }
        if (step.Index > scope.StepIndex)
            return $"uses step `{stepId}`, which runs later (steps[{step.Index}]); a step can only use outputs of steps before it";
        if (step.Index == scope.StepIndex && !scope.InRollback)
            return "uses this step's own output; a step can only use outputs of steps before it (its rollback may use them)";
        if (!step.Outputs.Contains(reference.OutputName!))
        {
            var suggestion = Suggestions.Closest(reference.OutputName!, step.Outputs);
            return $"names no output `{reference.OutputName}` of step `{stepId}`"
                + (suggestion is not null ? $"; did you mean `{suggestion}`?" : $"; declare it under that step's `outputs`");
        }
        return null;
    }

    /// <summary>
    /// Where a template is in the source: found by searching the scalar's own source text for the template as
    /// written (the same occurrence), which works for plain, quoted and block scalars alike. When the template is
    /// not written verbatim (escapes, folding inside the braces), the scalar's start is used.
    /// </summary>
    private SourcePosition Locate(YScalar scalar, TemplateReference reference)
    {
        var raw = reference.Text(scalar.Value);
        var occurrence = 0;
        for (var at = scalar.Value.IndexOf(raw, StringComparison.Ordinal); at >= 0 && at < reference.Index; at = scalar.Value.IndexOf(raw, at + raw.Length, StringComparison.Ordinal))
            occurrence++;

        var start = scalar.Start.Index;
        var end = Math.Min(scalar.End.Index, source.Length);
        if (start < 0 || start >= end)
            return scalar.Start;
        var slice = source.AsSpan((int)start, (int)(end - start));

        var offset = -1;
        var searchFrom = 0;
        for (var n = 0; n <= occurrence; n++)
        {
            var found = slice[searchFrom..].IndexOf(raw.AsSpan(), StringComparison.Ordinal);
            if (found < 0)
                return scalar.Start;
            offset = searchFrom + found;
            searchFrom = offset + raw.Length;
        }

        var before = slice[..offset];
        var newlines = before.Count('\n');
        if (newlines == 0)
            return new SourcePosition(scalar.Start.Line, scalar.Start.Column + offset, start + offset);
        var lastNewline = before.LastIndexOf('\n');
        return new SourcePosition(scalar.Start.Line + newlines, offset - lastNewline, start + offset);
    }
}
