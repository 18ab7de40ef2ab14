using System.Text.Json;
using Bunit;
using Microsoft.Extensions.DependencyInjection;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Features.Runbooks;
using RunbookPortal.Web.Tests.Infrastructure;
using RunbookPortal.Web.Tests.Integration;

namespace RunbookPortal.Web.Tests.Components;

/// <summary>The execution timeline (steps, rollback phase, retry countdown) and the log view, rendered from events as a person sees them.</summary>
public sealed class ExecutionTimelineComponentTests : PortalBunitContext
{
    private static readonly DateTime T0 = new(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc);
    private static readonly Guid Id = Guid.NewGuid();
    private long _seq;

    private EventView Event(double atSeconds, string kind, string? stepId = null, object? data = null) =>
        new(Id, ++_seq, T0.AddSeconds(atSeconds), kind, stepId, JsonSerializer.SerializeToElement(data ?? new { }));

    private static StepView Step(string id, StepStatus status, string? error = null, bool rollback = false) =>
        new(id, $"Step {id}", "shell", status, 0, null, null, error, rollback);

    private static ExecutionView View(ExecutionStatus status, IReadOnlyList<StepView> steps, string? failed = null, string? current = null) =>
        new(Id, "web-deploy", 3, status, "op@portal.test", T0, T0, status is ExecutionStatus.Running or ExecutionStatus.RollingBack ? null : T0.AddMinutes(5), false,
            new Dictionary<string, string>(), current, failed, null, false, null, steps);

    private IRenderedComponent<ExecutionTimelineView> RenderTimeline(ExecutionView view, IEnumerable<EventView> events, DateTime now) =>
        Render<ExecutionTimelineView>(p => p.Add(c => c.Timeline, ExecutionTimeline.From(view, events.ToList())).Add(c => c.Now, now));

    private static string Text(AngleSharp.Dom.IElement e) => System.Text.RegularExpressions.Regex.Replace(e.TextContent, @"\s+", " ").Trim();

    [Fact]
    public void Timeline_ShowsEachStepsState_WithIconColourStartDurationAndAttempts_AndNotRunOnceTheRunEnded()
    {
        var view = View(ExecutionStatus.Failed, [
            Step("build", StepStatus.Succeeded),
            Step("lint", StepStatus.Skipped),
            Step("optional", StepStatus.TimedOut, "no answer within 5s"),
            Step("deploy", StepStatus.Failed, "exit code 3"),
            Step("verify", StepStatus.Pending),
        ], failed: "deploy");
        var events = new[]
        {
            Event(0, EventKinds.ExecutionStarted),
            Event(1, EventKinds.StepStarted, "build", new { attempt = 1 }),
            Event(3.5, EventKinds.StepSucceeded, "build", new { attempt = 1 }),
            Event(4, EventKinds.StepSkipped, "lint", new { reason = "dry" }),
            Event(4, EventKinds.StepStarted, "optional", new { attempt = 1 }),
            Event(9, EventKinds.StepFailed, "optional", new { attempt = 1, reason = "no answer within 5s", timedOut = true }),
            Event(10, EventKinds.StepStarted, "deploy", new { attempt = 1 }),
            Event(12, EventKinds.StepRetrying, "deploy", new { attempt = 1, nextAttempt = 2, delayMs = 3000, reason = "exit code 3" }),
            Event(15, EventKinds.StepStarted, "deploy", new { attempt = 2 }),
            Event(16, EventKinds.StepFailed, "deploy", new { attempt = 2, reason = "exit code 3" }),
            Event(16, EventKinds.ExecutionFinished, null, new { status = "Failed", failedStepId = "deploy" }),
        };

        var cut = RenderTimeline(view, events, T0.AddMinutes(10));

        var rows = cut.FindAll("[data-testid=steps] > [data-step]");
        Assert.Equal(["build", "lint", "optional", "deploy", "verify"], rows.Select(r => r.GetAttribute("data-step")));
        Assert.Equal(["Succeeded", "Skipped", "TimedOut", "Failed", "NotRun"], rows.Select(r => r.GetAttribute("data-status")));
        Assert.Equal(["Succeeded", "Skipped", "Timed out", "Failed", "Not run"], rows.Select(r => r.QuerySelector("[data-testid=step-status]")!.TextContent.Trim()));
        Assert.Contains("mud-success-text", rows[0].QuerySelector("svg")!.GetAttribute("class"));
        Assert.Contains("mud-error-text", rows[3].QuerySelector("svg")!.GetAttribute("class"));
        Assert.Equal("started 10:00:01 UTC", Text(rows[0].QuerySelector("[data-testid=step-start]")!));
        Assert.Equal("took 2.5 s", Text(rows[0].QuerySelector("[data-testid=step-duration]")!));
        Assert.Equal("1 attempt", Text(rows[0].QuerySelector("[data-testid=step-attempts]")!));
        // The failed step: in red, with its reason; its running time is that of its two attempts, not the 3 s wait between them.
        Assert.Contains("rbp-step-failed", rows[3].ClassName);
        Assert.Equal("exit code 3", rows[3].QuerySelector("[data-testid=step-error]")!.TextContent);
        Assert.Equal("took 3.0 s", Text(rows[3].QuerySelector("[data-testid=step-duration]")!));
        Assert.Equal("2 attempts", Text(rows[3].QuerySelector("[data-testid=step-attempts]")!));
        Assert.Null(rows[3].QuerySelector("[data-testid=step-retry]")); // the run ended: no countdown
        Assert.Null(rows[4].QuerySelector("[data-testid=step-start]"));
        Assert.Empty(cut.FindAll("[data-testid=rollback]"));
    }

    [Fact]
    public void Timeline_WhileAStepRuns_ShowsItsElapsedTime_AndPendingStepsAreNotYetNotRun()
    {
        var view = View(ExecutionStatus.Running, [Step("build", StepStatus.Running), Step("deploy", StepStatus.Pending)], current: "build");
        var cut = RenderTimeline(view, [Event(0, EventKinds.ExecutionStarted), Event(1, EventKinds.StepStarted, "build", new { attempt = 1 })], T0.AddSeconds(43));

        var rows = cut.FindAll("[data-testid=steps] > [data-step]");
        Assert.Equal(["Running", "Pending"], rows.Select(r => r.GetAttribute("data-status")));
        Assert.Contains("rbp-step-current", rows[0].ClassName);
        Assert.Equal("running for 42.0 s", Text(rows[0].QuerySelector("[data-testid=step-duration]")!));
        Assert.Equal("Pending", rows[1].QuerySelector("[data-testid=step-status]")!.TextContent.Trim());
    }

    [Fact]
    public void Timeline_ShowsTheCountdownToTheNextAttempt_WhileAStepWaitsToRetry()
    {
        var view = View(ExecutionStatus.Running, [Step("pre_check", StepStatus.Retrying, "HTTP 503")], current: "pre_check");
        var events = new[]
        {
            Event(0, EventKinds.StepStarted, "pre_check", new { attempt = 1 }),
            Event(2, EventKinds.StepRetrying, "pre_check", new { attempt = 1, nextAttempt = 2, delayMs = 10_000, reason = "HTTP 503" }),
        };

        var cut = RenderTimeline(view, events, T0.AddSeconds(5));

        var row = cut.Find("[data-step=pre_check]");
        Assert.Equal("Retrying", row.GetAttribute("data-status"));
        Assert.Equal("attempt 2 in 7 s — the last one failed: HTTP 503", Text(row.QuerySelector("[data-testid=step-retry]")!));
        Assert.Equal("took 2.0 s", Text(row.QuerySelector("[data-testid=step-duration]")!)); // the wait is not running time

        cut.Render(p => p.Add(c => c.Now, T0.AddSeconds(11.5)));
        Assert.Equal("attempt 2 in 1 s — the last one failed: HTTP 503", Text(cut.Find("[data-step=pre_check] [data-testid=step-retry]")));
    }

    [Fact]
    public void Timeline_AfterAResume_CountsEveryAttempt_AndNotTheIdleGapAsRunningTime()
    {
        var view = View(ExecutionStatus.Succeeded, [Step("migrate", StepStatus.Succeeded)]);
        var events = new[]
        {
            Event(0, EventKinds.StepStarted, "migrate", new { attempt = 1 }),
            Event(10, EventKinds.ExecutionInterrupted, null, new { reason = "the node stopped" }),
            Event(3600, EventKinds.ExecutionResumed, "migrate", new { by = "op@portal.test", fromStep = "migrate" }),
            Event(3601, EventKinds.StepStarted, "migrate", new { attempt = 1 }),
            Event(3606, EventKinds.StepSucceeded, "migrate", new { attempt = 1 }),
        };

        var cut = RenderTimeline(view, events, T0.AddHours(2));

        var row = cut.Find("[data-step=migrate]");
        Assert.Equal("took 15.0 s", Text(row.QuerySelector("[data-testid=step-duration]")!));
        Assert.Equal("2 attempts (1 before the resume)", Text(row.QuerySelector("[data-testid=step-attempts]")!));
        Assert.Equal("started 10:00:00 UTC", Text(row.QuerySelector("[data-testid=step-start]")!));
    }

    [Fact]
    public void Timeline_ShowsTheRollbackPhase_InTheOrderTheRollbacksRan_WithTheirOutcomes()
    {
        var view = View(ExecutionStatus.Failed, [
            Step("backup", StepStatus.RollbackFailed, "restore failed", rollback: true),
            Step("switch", StepStatus.RolledBack, rollback: true),
            Step("flag", StepStatus.Succeeded, rollback: true),
            Step("deploy", StepStatus.Failed, "exit code 1"),
        ], failed: "deploy");
        var events = new[]
        {
            Event(0, EventKinds.StepStarted, "deploy", new { attempt = 1 }),
            Event(1, EventKinds.StepFailed, "deploy", new { attempt = 1, reason = "exit code 1" }),
            Event(1, EventKinds.RollbackStarted, null, new { reason = "step 'deploy' failed: exit code 1" }),
            Event(2, EventKinds.RollbackStepStarted, "switch"),
            Event(4, EventKinds.RollbackStepSucceeded, "switch"),
            Event(4, EventKinds.RollbackStepStarted, "backup"),
            Event(5, EventKinds.StepRetrying, "backup.rollback", new { attempt = 1, nextAttempt = 2, delayMs = 1000, reason = "busy" }),
            Event(9, EventKinds.RollbackStepFailed, "backup", new { reason = "restore failed" }),
            Event(9, EventKinds.ExecutionFinished, null, new { status = "Failed" }),
        };

        var cut = RenderTimeline(view, events, T0.AddMinutes(1));

        var section = cut.Find("[data-testid=rollback]");
        Assert.Contains("step 'deploy' failed: exit code 1", section.TextContent);
        var ran = section.QuerySelectorAll("[data-rollback]");
        Assert.Equal(["switch", "backup"], ran.Select(r => r.GetAttribute("data-rollback")));
        Assert.Equal(["RolledBack", "RollbackFailed"], ran.Select(r => r.GetAttribute("data-status")));
        Assert.Contains("Undo Step switch", Text(ran[0]));
        Assert.Contains("took 2.0 s", Text(ran[0]));
        Assert.Contains("2 attempts", Text(ran[1]));
        Assert.Contains("restore failed", Text(ran[1]));
        Assert.Equal("Not rolled back: flag", Text(cut.Find("[data-testid=not-rolled-back]")));
    }

    // ---- The log view.

    private static List<LogLine> Lines(params string[] texts) =>
        texts.Select((t, i) => new LogLine(i + 1, T0.AddSeconds(i), "deploy", t.StartsWith("ERR ", StringComparison.Ordinal), t)).ToList();

    [Fact]
    public void LogView_Search_CountsEveryMatch_AndMovesToTheNextAndPreviousOne()
    {
        var cut = Render<LogView>(p => p.Add(c => c.Lines, Lines("starting", "ERR error one", "ok", "an Error and an error", "done")));

        cut.Find("[data-testid=log-search]").Input("error");

        cut.WaitForAssertion(() => Assert.Equal("1 of 3", cut.Find("[data-testid=log-match-count]").TextContent.Trim()));
        Assert.Equal(3, cut.FindAll("mark.rbp-match").Count);
        Assert.Equal("error", cut.Find("mark.rbp-match-current").TextContent);
        Assert.Equal("2", cut.Find("mark.rbp-match-current").Closest("[data-seq]")!.GetAttribute("data-seq"));

        cut.Find("[data-testid=log-next]").Click();
        Assert.Equal("2 of 3", cut.Find("[data-testid=log-match-count]").TextContent.Trim());
        Assert.Equal("Error", cut.Find("mark.rbp-match-current").TextContent);
        Assert.Equal("4", cut.Find("mark.rbp-match-current").Closest("[data-seq]")!.GetAttribute("data-seq"));

        cut.Find("[data-testid=log-prev]").Click();
        cut.Find("[data-testid=log-prev]").Click();
        Assert.Equal("3 of 3", cut.Find("[data-testid=log-match-count]").TextContent.Trim()); // wraps around
        Assert.Equal("an Error and an error", cut.Find("mark.rbp-match-current").Closest(".rbp-output")!.TextContent);

        cut.Find("[data-testid=log-search]").Input("nowhere");
        cut.WaitForAssertion(() => Assert.Equal("No matches", cut.Find("[data-testid=log-match-count]").TextContent.Trim()));
        Assert.Empty(cut.FindAll("mark.rbp-match"));
    }

    [Fact]
    public void LogView_CountsMatchesInLinesThatArriveWhileSearching()
    {
        var lines = Lines("error a", "fine");
        var cut = Render<LogView>(p => p.Add(c => c.Lines, lines));
        cut.Find("[data-testid=log-search]").Input("error");
        cut.WaitForAssertion(() => Assert.Equal("1 of 1", cut.Find("[data-testid=log-match-count]").TextContent.Trim()));

        lines.Add(new LogLine(3, T0, "deploy", true, "error b"));
        cut.Render(p => p.Add(c => c.Lines, lines));

        Assert.Equal("1 of 2", cut.Find("[data-testid=log-match-count]").TextContent.Trim());
    }

    [Fact]
    public void LogView_RendersAnsiColoursAsClasses_AndMarkupInALineAsText()
    {
        var cut = Render<LogView>(p => p.Add(c => c.Lines, Lines(
            "\u001b[31mred\u001b[0m plain \u001b[1;92mbold green\u001b[39m still bold\u001b[0m",
            "\u001b[44;97mwhite on blue\u001b[49m no background\u001b[0m\u001b[2K",
            "<script>alert('x')</script><img src=x onerror=alert(1)>",
            "ERR \u001b[33mwarned\u001b[m")));

        var first = cut.Find("[data-seq='1'] .rbp-output");
        Assert.Equal("red plain bold green still bold", first.TextContent);
        var spans = first.QuerySelectorAll("span");
        Assert.Equal(["ansi-fg-31", "", "ansi-fg-92 ansi-bold", "ansi-bold"], spans.Select(s => s.GetAttribute("class") ?? ""));
        Assert.Equal(["red", " plain ", "bold green", " still bold"], spans.Select(s => s.TextContent));

        var second = cut.Find("[data-seq='2'] .rbp-output").QuerySelectorAll("span");
        Assert.Equal(["ansi-fg-97 ansi-bg-44", "ansi-fg-97"], second.Select(s => s.GetAttribute("class")));
        Assert.Equal("white on blue no background", cut.Find("[data-seq='2'] .rbp-output").TextContent);

        var hostile = cut.Find("[data-seq='3'] .rbp-output");
        Assert.Equal("<script>alert('x')</script><img src=x onerror=alert(1)>", hostile.TextContent);
        Assert.Empty(cut.FindAll("script"));
        Assert.Empty(cut.FindAll("img"));

        var stderr = cut.Find("[data-seq='4']");
        Assert.Contains("rbp-stderr", stderr.ClassName);
        Assert.DoesNotContain("rbp-stderr", cut.Find("[data-seq='1']").ClassName);
        Assert.Equal("ansi-fg-33", stderr.QuerySelectorAll(".rbp-output span")[1].GetAttribute("class"));
    }

    /// <summary>Prerendered (before the circuit is up), a long log is its last lines only, as text, without the virtualizer.</summary>
    [Fact]
    public void LogView_Prerendered_ShowsOnlyTheLastLines_AsText()
    {
        RenderAs(new Microsoft.AspNetCore.Components.RendererInfo("Static", isInteractive: false));
        var texts = Enumerable.Range(1, 500).Select(i => i == 500 ? "<b>last</b>" : $"line {i}").ToArray();

        var cut = Render<LogView>(p => p.Add(c => c.Lines, Lines(texts)));

        var rows = cut.FindAll(".rbp-log-tail .rbp-log-line");
        Assert.Equal(LogView.PrerenderedLines, rows.Count);
        Assert.Equal($"line {500 - LogView.PrerenderedLines + 1}", rows[0].TextContent.Trim());
        Assert.Equal("<b>last</b>", rows[^1].TextContent.Trim());
        Assert.Empty(cut.FindAll("b"));
        Assert.Equal("500", cut.Find("[data-testid=log-lines]").GetAttribute("data-count"));
    }

    [Fact]
    public void LogView_TimestampsToggle_ShowsEachLinesTime()
    {
        var cut = Render<LogView>(p => p.Add(c => c.Lines, Lines("one", "two")));
        Assert.Empty(cut.FindAll(".rbp-log-time"));

        cut.Find("[data-testid=log-timestamps]").Change(true);

        Assert.Equal(["10:00:00.000", "10:00:01.000"], cut.FindAll(".rbp-log-time").Select(t => t.TextContent));
    }

    [Fact]
    public void LogView_OffersJumpToLive_OnceTheReaderScrollsUp()
    {
        var cut = Render<LogView>(p => p.Add(c => c.Lines, Lines("one", "two")).Add(c => c.Live, true));
        Assert.Empty(cut.FindAll("[data-testid=log-jump-live]"));

        cut.InvokeAsync(() => cut.Instance.OnFollowChanged(atEnd: false));

        cut.WaitForAssertion(() => Assert.Equal("Jump to live", cut.Find("[data-testid=log-jump-live]").TextContent.Trim()));
        cut.Find("[data-testid=log-jump-live]").Click();
        Assert.Empty(cut.FindAll("[data-testid=log-jump-live]"));
    }

    [Fact]
    public void AnsiText_DropsOtherEscapeSequences_AndIgnoresTheArgumentsOf256Colours()
    {
        Assert.Equal([new AnsiSegment("plain", null)], AnsiText.Parse("\u001b[2K\u001b[1Gplain"));
        Assert.Equal([new AnsiSegment("x", null)], AnsiText.Parse("\u001b[38;5;31mx"));
        Assert.Equal("ab", AnsiText.Strip("a\u001b[31;1mb\u001b[0m"));
        Assert.Equal([new AnsiSegment("cut", "ansi-fg-32")], AnsiText.Parse("\u001b[32mcut\u001b["));
    }
}

/// <summary>The execution page on the portal's real services (SQLite, the real worker): parameters masked, the timeline, the log and Run again.</summary>
public sealed class ExecutionTimelinePageTests : PortalBunitContext, IClassFixture<SqliteEngineFixture>
{
    private readonly PortalFactory _portal;

    public ExecutionTimelinePageTests(SqliteEngineFixture fixture)
    {
        _portal = fixture.Portal;
        Services.AddScoped(_ => new PortalScope(_portal.Services.CreateAsyncScope()));
        Services.AddScoped(sp => sp.GetRequiredService<PortalScope>().Get<ExecutionService>());
        Services.AddScoped(sp => sp.GetRequiredService<PortalScope>().Get<ApprovalService>());
        Services.AddScoped(sp => sp.GetRequiredService<PortalScope>().Get<RunbookCatalog>());
        Services.AddSingleton(_portal.Services.GetRequiredService<ExecutionNotifier>());
        Services.AddSingleton(_portal.Services.GetRequiredService<ExecutionFeed>());
        Services.AddSingleton(_portal.Services.GetRequiredService<TimeProvider>());
    }

    private sealed class PortalScope(AsyncServiceScope scope) : IAsyncDisposable
    {
        public T Get<T>() where T : notnull => scope.ServiceProvider.GetRequiredService<T>();
        public ValueTask DisposeAsync() => scope.DisposeAsync();
    }

    [Fact]
    public async Task ExecutionPage_ShowsParametersWithTheSecretMasked_TheFailedStepInRed_NotRunSteps_AndTheLog()
    {
        var name = $"page-tl-{Guid.NewGuid():N}"[..28];
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Timeline page
            type: deployment
            parameters:
              environment: { type: string, required: true }
              token: { type: secret, required: true }
            steps:
              - id: announce
                name: Announce
                action: shell
                run: printf '\033[32mdeploying\033[0m to %s with %s\n' {{ environment }} {{ token }}; echo "<b>not bold</b>" >&2
              - id: migrate
                name: Migrate
                action: shell
                run: echo "lock held"; exit 3
              - id: verify
                name: Verify
                action: shell
                run: "true"
            """, name);
        var (client, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        var secret = $"s3cr3t-{Guid.NewGuid():N}"[..16];
        var id = await ExecutionApiTests.StartAsync(client, name, new { environment = "staging", token = secret });
        await ExecutionApiTests.WaitForEndAsync(client, id);
        SignInAs(op, "Operator");

        var cut = RenderWithAuth<ExecutionPage>(p => p.Add(c => c.Id, id));

        cut.WaitForAssertion(() => Assert.Equal("Failed", cut.Find(".mud-chip[data-status]").GetAttribute("data-status")), TimeSpan.FromSeconds(10));
        var parameters = cut.Find("[data-testid=parameters]").TextContent;
        Assert.Contains("environment = staging", parameters);
        Assert.Contains("token = ***", parameters);
        Assert.DoesNotContain(secret, cut.Markup);
        var steps = cut.FindAll("[data-testid=steps] > [data-step]");
        Assert.Equal(["Succeeded", "Failed", "NotRun"], steps.Select(s => s.GetAttribute("data-status")));
        Assert.Equal("Not run", steps[2].QuerySelector("[data-testid=step-status]")!.TextContent.Trim());
        Assert.Contains("rbp-step-failed", steps[1].ClassName);
        var failure = cut.Find("[data-testid=failure]");
        Assert.Matches(@"mud-alert-\w+-error", failure.ClassName); // an error alert, whatever its variant
        Assert.Contains("Failed at step 2, “Migrate”", failure.TextContent);
        cut.WaitForAssertion(() => Assert.Contains("deploying to staging with ***", cut.Find("[data-testid=log-lines]").TextContent));
        Assert.Equal("ansi-fg-32", cut.FindAll("[data-testid=log-lines] .rbp-output span").First(s => s.TextContent == "deploying").GetAttribute("class"));
        var stderr = cut.FindAll("[data-testid=log-lines] .rbp-log-line.rbp-stderr").Single();
        Assert.Equal("<b>not bold</b>", stderr.QuerySelector(".rbp-output")!.TextContent);
        Assert.Equal($"/api/executions/{id}/log", cut.Find("[data-testid=log-download]").GetAttribute("href"));
        Assert.Equal($"/runbooks/{name}/run?from={id}", cut.Find("[data-testid=run-again]").GetAttribute("href"));
    }

    [Fact]
    public async Task StartPage_FromRunAgain_FillsTheSameValues_AndLeavesTheSecretToBeTypedAgain()
    {
        var name = $"page-again-{Guid.NewGuid():N}"[..28];
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Again
            type: maintenance
            parameters:
              environment: { type: string, required: true }
              batch: { type: int, default: 2 }
              token: { type: secret, required: true }
            steps:
              - id: hello
                action: shell
                run: echo hi
            """, name);
        var (client, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        var id = await ExecutionApiTests.StartAsync(client, name, new { environment = "staging", batch = 7, token = "hunter2-secret" });
        await ExecutionApiTests.WaitForEndAsync(client, id);
        SignInAs(op, "Operator");

        Services.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>().NavigateTo($"/runbooks/{name}/run?from={id}");
        var cut = RenderWithAuth<StartExecutionPage>(p => p.Add(c => c.Name, name));

        cut.WaitForAssertion(() => Assert.NotNull(cut.Find("[data-testid=run-again-note]")), TimeSpan.FromSeconds(10));
        Assert.Equal("staging", cut.Find("[data-testid=param-environment] input").GetAttribute("value"));
        Assert.Equal("7", cut.Find("[data-testid=param-batch] input").GetAttribute("value"));
        Assert.True(string.IsNullOrEmpty(cut.Find("[data-testid=param-token] input").GetAttribute("value")));
        Assert.Contains("type token again", cut.Find("[data-testid=run-again-secrets]").TextContent);
        Assert.DoesNotContain("hunter2", cut.Markup);
        Assert.DoesNotContain("***", cut.Find("[data-testid=param-token]").OuterHtml);
    }

    [Fact]
    public async Task StartPage_FromARunOfAnotherRunbook_OrNoRunAtAll_StartsEmpty_AndSaysSo()
    {
        var name = $"page-other-{Guid.NewGuid():N}"[..28];
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: Other
            type: maintenance
            parameters:
              environment: { type: string }
            steps:
              - id: hello
                action: shell
                run: echo hi
            """, name);
        var (_, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        SignInAs(op, "Operator");

        var navigation = Services.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>();
        navigation.NavigateTo($"/runbooks/{name}/run?from={Guid.NewGuid()}");
        var cut = RenderWithAuth<StartExecutionPage>(p => p.Add(c => c.Name, name));
        cut.WaitForAssertion(() => Assert.Contains("There is no such run", cut.Find("[data-testid=run-again-note]").TextContent), TimeSpan.FromSeconds(10));
        Assert.True(string.IsNullOrEmpty(cut.Find("[data-testid=param-environment] input").GetAttribute("value")));

        navigation.NavigateTo($"/runbooks/{name}/run?from=%3Cscript%3E");
        var garbage = RenderWithAuth<StartExecutionPage>(p => p.Add(c => c.Name, name));
        garbage.WaitForAssertion(() => Assert.Contains("not an execution id", garbage.Find("[data-testid=run-again-note]").TextContent), TimeSpan.FromSeconds(10));
    }
}
