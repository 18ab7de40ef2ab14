using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RunbookPortal.E2E;

/// <summary>
/// Running a runbook in the browser: an Operator fills the run form (a select, a number with a range, a secret),
/// sees a value out of range refused, confirms the prerequisite, confirms the start in a message box that masks the
/// secret, and watches the execution page fill its timeline by itself until the run has succeeded; the secret is
/// never on a page. The executions list shows the run.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class ExecutionTests(PortalProcess portal, ITestOutputHelper output) : BrowserTest(portal, output)
{
    private const string RunbookName = "e2e-restart-web";
    private const string RunbookTitle = "Restart web tier";

    /// <summary>The restart step prints its first batch, then waits for this file, which the test writes once the page has shown that batch.</summary>
    private readonly string _nextBatches = $"/tmp/rbp-e2e-batches-{Guid.NewGuid():N}";

    private string RunbookYaml => $$$"""
        apiVersion: runbooks/v1
        name: e2e-restart-web
        title: Restart web tier
        description: Restarts the web tier one batch at a time.
        type: maintenance
        prerequisites:
          - Change ticket approved
        parameters:
          environment: { type: string, required: true, allowed: [staging, production] }
          batch_size: { type: int, default: 2, min: 1, max: 10 }
          api_key: { type: secret, required: true }
        steps:
          - id: announce
            name: Announce
            action: shell
            run: echo "restarting {{ environment }} in batches of {{ batch_size }} with key {{ api_key }}"
          - id: restart
            name: Restart batches
            action: shell
            timeout: 2m
            run: echo "batch 1 done"; while [ ! -e {{{_nextBatches}}} ]; do sleep 0.05; done; for i in 2 3; do echo "batch $i done"; sleep 0.3; done

        """;

    private static readonly Regex ExecutionUrl = new(@"/executions/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$");

    /// <summary>
    /// Installed in the document before the start is confirmed: marks the document (a full page load would lose the
    /// mark) and records, at every DOM change, what the execution page's timeline and status chip show, so the test
    /// can tell the page filled in by itself, step by step, rather than appearing complete.
    /// </summary>
    private const string RecorderScript = """
        () => {
          window.__rbpE2eDocument = true;
          window.__rbpE2eStates = [];
          const record = () => {
            const timeline = document.querySelector('[data-testid=timeline]');
            const h1 = document.querySelector('h1');
            const chip = h1?.parentElement?.querySelector('[data-status]');
            const text = timeline?.textContent ?? '';
            const state = {
              path: location.pathname,
              batch1: text.includes('batch 1 done'),
              batch3: text.includes('batch 3 done'),
              status: chip?.getAttribute('data-status') ?? null,
            };
            const last = window.__rbpE2eStates[window.__rbpE2eStates.length - 1];
            if (!last || JSON.stringify(last) !== JSON.stringify(state))
              window.__rbpE2eStates.push(state);
          };
          new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
          record();
        }
        """;

    [Fact]
    public async Task OperatorRunsARunbook_FromTheForm_AndWatchesTheLiveTimeline()
    {
        // ---- Set-up through the REST API: an operator, and the runbook published by the admin and a second author.
        using var admin = Api(Portal.ApiToken);
        var (operatorEmail, operatorPassword, _) = await OperatorAndPublishedRunbookAsync(admin, RunbookName, RunbookYaml, "operator");
        var secret = $"sk-live-{Guid.NewGuid().ToString("N")[..8]}-Qz7";

        // ---- The operator opens the runbook and chooses Run.
        await SignInAsync(operatorEmail, operatorPassword);
        await Page.GotoAsync($"/runbooks/{RunbookName}");
        await WaitForInteractiveAsync(RunbookTitle);
        await Page.Locator("[data-testid=run-runbook]").ClickAsync();
        await Expect(Page).ToHaveURLAsync(new Regex($"/runbooks/{RunbookName}/run$"));
        await WaitForInteractiveAsync(RunbookTitle);

        var environment = Page.Locator("[data-testid=param-environment]");
        var batchSize = Page.Locator("[data-testid=param-batch_size]");
        var apiKey = Page.Locator("[data-testid=param-api_key]");
        var prerequisite = Page.Locator("[data-testid=prereq-0]");
        var start = Page.Locator("[data-testid=start]");
        await Expect(batchSize.Locator("input"), "batch_size starts at its default").ToHaveValueAsync("2");
        await Expect(batchSize.Locator("input")).ToHaveAttributeAsync("type", "number");
        await Expect(apiKey.Locator("input"), "the secret is typed into a password field").ToHaveAttributeAsync("type", "password");
        await Expect(prerequisite, "the prerequisite is a checkbox labelled with its text").ToHaveAccessibleNameAsync("Change ticket approved");
        await Expect(prerequisite).Not.ToBeCheckedAsync();

        // ---- Valid values, but the prerequisite is not confirmed yet: no start.
        await environment.Locator(".mud-select").First.ClickAsync();
        await Page.GetByRole(AriaRole.Option, new() { Name = "staging", Exact = true }).ClickAsync();
        await Expect(environment.Locator("input").First, "staging is chosen").ToHaveValueAsync("staging");
        await apiKey.Locator("input").FillAsync(secret);
        await Expect(start, "the prerequisite must be confirmed first").ToBeDisabledAsync();
        await prerequisite.CheckAsync();
        await Expect(prerequisite).ToBeCheckedAsync();
        await Expect(start, "valid values and the prerequisite confirmed").ToBeEnabledAsync();

        // ---- A batch size out of range is refused on the spot.
        await batchSize.Locator("input").FillAsync("42");
        var batchError = batchSize.Locator(".mud-input-helper-text.mud-input-error, .mud-input-error .mud-input-helper-text");
        await Expect(batchError, "42 is above batch_size's maximum").ToBeVisibleAsync();
        await Expect(batchError).ToContainTextAsync(new Regex(@"(≤|at most|maximum).*10"));
        Output.WriteLine($"batch_size = 42 shows: \"{await batchError.InnerTextAsync()}\"");
        await Expect(start, "a value out of range blocks the start").ToBeDisabledAsync();
        await ScreenshotAsync("run-form-invalid.png");
        await batchSize.Locator("input").FillAsync("3");
        await Expect(batchError, "3 is in range").ToHaveCountAsync(0);
        await Expect(start).ToBeEnabledAsync();
        await ScreenshotAsync("run-form.png");

        // ---- Start: the confirmation names runbook, version and values, the secret masked.
        await Page.EvaluateAsync(RecorderScript);
        await start.ClickAsync();
        var dialog = Page.Locator(".mud-dialog");
        await Expect(dialog, "starting asks for confirmation").ToBeVisibleAsync();
        var dialogText = await dialog.InnerTextAsync();
        Output.WriteLine($"Confirmation: {dialogText}");
        Assert.Contains(RunbookTitle, dialogText);
        Assert.Contains("version 1", dialogText);
        Assert.Contains("environment\tstaging", dialogText);
        Assert.Contains("batch_size\t3", dialogText);
        Assert.Contains("api_key\t***", dialogText);
        Assert.DoesNotContain(secret, dialogText);
        await dialog.GetByRole(AriaRole.Button, new() { Name = "Start", Exact = true }).ClickAsync();

        // ---- The execution page fills in by itself.
        await Expect(Page, "the start opens the execution").ToHaveURLAsync(ExecutionUrl);
        var executionId = ExecutionUrl.Match(Page.Url).Groups[1].Value;
        Assert.True(await Page.EvaluateAsync<bool>("() => window.__rbpE2eDocument === true"),
            "the execution page opened with a full page load; expected the circuit's own navigation");
        await Expect(Page.Locator("h1"), "the execution page names the runbook and version").ToHaveTextAsync($"{RunbookName} v1");
        var timeline = Page.Locator("[data-testid=timeline]");
        var status = Page.Locator("h1").Locator("xpath=..").Locator("[data-status]");
        await Expect(timeline, "output appears while the run goes on").ToContainTextAsync("batch 1 done");
        await ScreenshotAsync("execution-live.png");
        await File.WriteAllTextAsync(_nextBatches, "go");
        try
        {
            await Expect(timeline, "the last batch appears without a reload").ToContainTextAsync("batch 3 done");
        }
        finally
        {
            File.Delete(_nextBatches);
        }
        await Expect(status, "the run succeeds and the chip says so without a reload").ToHaveAttributeAsync("data-status", "Succeeded");
        await Expect(status).ToHaveTextAsync("Succeeded");

        Assert.True(await Page.EvaluateAsync<bool>("() => window.__rbpE2eDocument === true"), "the execution page was reloaded");
        var states = await Page.EvaluateAsync<JsonElement>("() => window.__rbpE2eStates");
        var onExecution = states.EnumerateArray().Where(s => s.GetProperty("path").GetString()!.StartsWith("/executions/")).ToList();
        Output.WriteLine("States seen on the execution page: " + string.Join(" → ", onExecution.Select(s =>
            $"{s.GetProperty("status")}{(s.GetProperty("batch1").GetBoolean() ? "+b1" : "")}{(s.GetProperty("batch3").GetBoolean() ? "+b3" : "")}")));
        Assert.True(onExecution.Count > 0 && onExecution[0].GetProperty("status").GetString() != "Succeeded",
            "the execution page first showed the run as already succeeded, so live updates were not seen");
        Assert.True(onExecution.Any(s => s.GetProperty("batch1").GetBoolean() && !s.GetProperty("batch3").GetBoolean()),
            "the timeline never showed batch 1 without batch 3: it did not fill in line by line");

        await Expect(timeline.Locator(".rbp-output").Filter(new() { HasText = "restarting staging in batches of 3" }),
            "the announce line has the secret masked").ToHaveTextAsync("restarting staging in batches of 3 with key ***");
        var steps = Page.Locator("[data-testid=steps] > [data-step]");
        await Expect(steps).ToHaveCountAsync(2);
        await Expect(steps.Nth(0)).ToHaveAttributeAsync("data-status", "Succeeded");
        await Expect(steps.Nth(1)).ToHaveAttributeAsync("data-status", "Succeeded");
        await Expect(Page.GetByText("api_key = ***"), "the parameters show the secret masked").ToBeVisibleAsync();
        var html = await Page.ContentAsync();
        Assert.DoesNotContain(secret, html);
        Assert.Contains("***", html);
        await ScreenshotAsync("execution-done.png");

        // ---- Nor does the API hand the secret out.
        using (var execution = await admin.GetAsync($"/api/executions/{executionId}"))
        {
            var body = await execution.Content.ReadAsStringAsync();
            Assert.True(execution.IsSuccessStatusCode, $"GET /api/executions/{executionId} answered {(int)execution.StatusCode}: {body}");
            Assert.DoesNotContain(secret, body);
        }
        using (var events = await admin.GetAsync($"/api/executions/{executionId}/events"))
        {
            var body = await events.Content.ReadAsStringAsync();
            Assert.True(events.IsSuccessStatusCode, $"GET /api/executions/{executionId}/events answered {(int)events.StatusCode}: {body}");
            Assert.DoesNotContain(secret, body);
            Assert.Contains("batch 3 done", body);
        }

        // ---- The executions list.
        await Page.GotoAsync("/executions");
        await WaitForInteractiveAsync("Executions");
        var row = Page.Locator("[data-testid=executions-table] tbody tr").Filter(new() { Has = Page.Locator($"a[href='/executions/{executionId}']") });
        await Expect(row).ToHaveCountAsync(1);
        await Expect(row).ToContainTextAsync(RunbookName);
        await Expect(row).ToContainTextAsync(operatorEmail);
        await Expect(row.Locator("[data-status]")).ToHaveAttributeAsync("data-status", "Succeeded");
        await Expect(row.Locator("[data-status]")).ToHaveTextAsync("Succeeded");
        await ScreenshotAsync("executions.png");
    }

    private const string FlakyYaml = """
        apiVersion: runbooks/v1
        name: e2e-flaky-migration
        title: Flaky migration
        type: deployment
        steps:
          - id: prepare
            name: Prepare
            action: shell
            run: echo prepared
          - id: migrate
            name: Migrate
            action: shell
            run: |
              if [ -f tried-once ]; then echo "migrated on the second try"; else touch tried-once; echo "lock held, giving up" >&2; exit 3; fi

        """;

    /// <summary>
    /// A run fails at its second step; the operator opens it, chooses Resume…, keeps the failed step the dialog
    /// proposes, and watches the same execution go on from there to Succeeded without a reload. The audit trail
    /// records the resume.
    /// </summary>
    [Fact]
    public async Task OperatorResumesAFailedRun_FromTheFailedStep_InTheBrowser()
    {
        const string name = "e2e-flaky-migration";
        using var admin = Api(Portal.ApiToken);
        // ---- A pipeline starts the run; it fails at 'migrate'.
        var (executionId, operatorEmail, status, timeline) = await OpenedPipelineRunAsync(admin, name, FlakyYaml, "resumer");
        await Expect(status, "the run fails at its second step").ToHaveAttributeAsync("data-status", "Failed");
        await Expect(timeline).ToContainTextAsync("lock held, giving up");
        await ScreenshotAsync("execution-failed.png");

        // ---- Resume… proposes the failed step; confirming runs it again on the same page.
        await Page.Locator("[data-testid=resume]").ClickAsync();
        var dialog = Page.Locator(".mud-dialog");
        await Expect(dialog).ToBeVisibleAsync();
        await Expect(dialog.GetByRole(AriaRole.Combobox, new() { Name = "Resume from" }), "the failed step is proposed").ToHaveValueAsync("2. Migrate (migrate) — Failed");
        await ScreenshotAsync("resume-dialog.png");
        await dialog.Locator("[data-testid=resume-confirm]").ClickAsync();

        await Expect(status, "the resumed run succeeds, shown without a reload").ToHaveAttributeAsync("data-status", "Succeeded");
        await Expect(timeline).ToContainTextAsync("migrated on the second try");
        await Expect(Page.Locator("[data-testid=steps] > [data-step]").Nth(1)).ToHaveAttributeAsync("data-status", "Succeeded");

        // ---- The step's times (the page's Duration column) are those of its run after the resume.
        DateTime resumedAt;
        using (var events = await admin.GetAsync($"/api/executions/{executionId}/events"))
        {
            using var json = JsonDocument.Parse(await events.Content.ReadAsStringAsync());
            resumedAt = json.RootElement.EnumerateArray().Single(e => e.GetProperty("kind").GetString() == "execution_resumed").GetProperty("at").GetDateTime();
        }
        using (var execution = await admin.GetAsync($"/api/executions/{executionId}"))
        {
            using var json = JsonDocument.Parse(await execution.Content.ReadAsStringAsync());
            var step = json.RootElement.GetProperty("steps").EnumerateArray().Single(s => s.GetProperty("id").GetString() == "migrate");
            Assert.True(step.GetProperty("startedAt").GetDateTime() >= resumedAt,
                $"the resumed step's start {step.GetProperty("startedAt")} is before the resume at {resumedAt:O}: its duration would include the failed attempt");
        }
        await Expect(Page).ToHaveURLAsync(new Regex($"/executions/{executionId}$"));
        await ScreenshotAsync("execution-resumed.png");

        // ---- The audit trail says who resumed it, and from which step.
        using var audit = await admin.GetAsync($"/api/audit?action=execution.resumed&actor={Uri.EscapeDataString(operatorEmail)}");
        var auditBody = await audit.Content.ReadAsStringAsync();
        Assert.True(audit.IsSuccessStatusCode, $"GET /api/audit answered {(int)audit.StatusCode}: {auditBody}");
        Assert.Contains(operatorEmail, auditBody);
        Assert.Contains(executionId, auditBody);
        Assert.Contains("migrate", auditBody);
    }

    private const string LongYaml = """
        apiVersion: runbooks/v1
        name: e2e-long-backup
        title: Long backup
        type: backup_restore
        steps:
          - id: snapshot
            name: Snapshot
            action: shell
            run: echo "snapshot taken"
            rollback: { action: shell, run: echo "snapshot deleted" }
          - id: copy
            name: Copy
            action: shell
            run: |
              sleep 300 &
              echo "copying, helper pid $!"
              wait

        """;

    /// <summary>
    /// An on-call engineer cancels a run whose step hangs, choosing to roll back: the step (and the process it
    /// started) is stopped, the succeeded step's rollback runs, and the page says Cancelled, all without a reload.
    /// </summary>
    [Fact]
    public async Task TheExecutionsList_PagesThroughMoreRunsThanFitOnAPage()
    {
        const string name = "e2e-many-runs";
        using var admin = Api(Portal.ApiToken);
        var (operatorEmail, operatorPassword, operatorToken) = await OperatorAndPublishedRunbookAsync(admin, name, """
            apiVersion: runbooks/v1
            name: e2e-many-runs
            title: Many runs
            type: maintenance
            steps:
              - id: hello
                action: shell
                run: echo hello
            """, "pager");
        var ids = new List<string>();
        for (var i = 0; i < 53; i++)
            ids.Add(await StartByApiAsync(operatorToken, name));

        await SignInAsync(operatorEmail, operatorPassword);
        await Page.GotoAsync("/executions");
        await WaitForInteractiveAsync("Executions");
        await Page.GetByLabel("Runbook name").FillAsync(name);
        var rows = Page.Locator("[data-testid=executions-table] tbody tr");
        await Expect(rows, "the first page is full").ToHaveCountAsync(50);
        await Expect(Page.GetByText("1–50 of 53")).ToBeVisibleAsync();
        await Expect(rows.First.Locator($"a[href='/executions/{ids[^1]}']").First, "newest first").ToBeVisibleAsync();
        await ScreenshotAsync("executions-pages.png");

        await Page.Locator("[data-testid=pages]").GetByRole(AriaRole.Button, new() { Name = "2" }).ClickAsync();
        await Expect(rows, "the second page holds the rest").ToHaveCountAsync(3);
        await Expect(Page.GetByText("51–53 of 53")).ToBeVisibleAsync();
        await Expect(rows.Last.Locator($"a[href='/executions/{ids[0]}']").First, "the oldest is last").ToBeVisibleAsync();
    }

    /// <summary>
    /// A finished run with 100,000 lines of output opens at its tail, virtualized (a few dozen rows in the document),
    /// scrolls to its first line and back, finds every occurrence of a search with next/previous, and downloads in full.
    /// </summary>
    [Fact]
    public async Task AFinishedRunWith100000Lines_Opens_Scrolls_Searches_AndDownloads()
    {
        const string name = "e2e-hundred-thousand";
        using var admin = Api(Portal.ApiToken);
        var (executionId, _, status, _) = await OpenedPipelineRunAsync(admin, name, """
            apiVersion: runbooks/v1
            name: e2e-hundred-thousand
            title: Hundred thousand lines
            type: maintenance
            steps:
              - id: count
                action: shell
                run: seq 1 100000
            """, "reader");
        await Expect(status).ToHaveAttributeAsync("data-status", "Succeeded", new() { Timeout = 60_000 });
        // Reopened once it has finished: what is measured is opening a finished run.
        var opening = System.Diagnostics.Stopwatch.StartNew();
        await Page.ReloadAsync();
        var log = Page.Locator("[data-testid=log-lines]");
        var rows = log.Locator(".rbp-log-line");
        await Expect(log).ToHaveAttributeAsync("data-count", "100000", new() { Timeout = 30_000 });
        await Expect(rows.Locator(".rbp-output").GetByText("100000", new() { Exact = true }), "the page opens at the tail").ToBeVisibleAsync();
        Output.WriteLine($"100,000 lines: tail shown {opening.ElapsedMilliseconds} ms after the reload");
        var rendered = await rows.CountAsync();
        Assert.True(rendered < 300, $"{rendered} rows are in the document: the log is not virtualized");
        await ScreenshotAsync("execution-100k.png");

        // ---- Scrolling up stops following and offers to jump back.
        await log.EvaluateAsync("e => e.scrollTop = 0");
        await Expect(rows.Locator(".rbp-output").GetByText("1", new() { Exact = true }), "the first line, after scrolling to the top").ToBeVisibleAsync();
        var jump = Page.Locator("[data-testid=log-jump-live]");
        await Expect(jump).ToHaveTextAsync("Jump to the end");
        await jump.ClickAsync();
        await Expect(rows.Locator(".rbp-output").GetByText("100000", new() { Exact = true })).ToBeVisibleAsync();
        await Expect(jump).ToHaveCountAsync(0);

        // ---- Search: every occurrence counted, next and previous move between them.
        var expected = Enumerable.Range(1, 100000).Sum(i => Regex.Matches(i.ToString(System.Globalization.CultureInfo.InvariantCulture), "4242").Count);
        await Page.Locator("input[data-testid=log-search]").FillAsync("4242");
        var count = Page.Locator("[data-testid=log-match-count]");
        await Expect(count).ToHaveTextAsync($"1 of {expected}");
        var current = log.Locator("mark.rbp-match-current");
        await Expect(current).ToBeVisibleAsync();
        await Expect(current.Locator("xpath=ancestor::span[contains(@class,'rbp-output')]")).ToHaveTextAsync("4242");
        await Page.Locator("[data-testid=log-next]").ClickAsync();
        await Expect(count).ToHaveTextAsync($"2 of {expected}");
        await Expect(current.Locator("xpath=ancestor::span[contains(@class,'rbp-output')]")).ToHaveTextAsync("14242");
        await Page.Locator("[data-testid=log-prev]").ClickAsync();
        await Page.Locator("[data-testid=log-prev]").ClickAsync();
        await Expect(count).ToHaveTextAsync($"{expected} of {expected}");
        await Expect(current.Locator("xpath=ancestor::span[contains(@class,'rbp-output')]")).ToHaveTextAsync("94242");
        await ScreenshotAsync("execution-100k-search.png");
        await ExpectAccessibleAsync(Page, "the execution page of a 100,000-line run");
        await OnAPhoneAsync(Page, "execution-100k-phone.png", "the execution page of a 100,000-line run on a phone", tablesFit: false);

        // ---- The download is the full log.
        var download = await Page.RunAndWaitForDownloadAsync(() => Page.Locator("[data-testid=log-download]").ClickAsync());
        var path = Path.Combine(Portal.ScreenshotDirectory, "execution-100k.log");
        await download.SaveAsAsync(path);
        var lines = await File.ReadAllLinesAsync(path);
        Assert.Equal(100000, lines.Length);
        Assert.Equal(Enumerable.Range(1, 100000).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)), lines.Select(l => l.Split('\t')[3]));
        Assert.StartsWith($"execution-{executionId[..8]}", download.SuggestedFilename);
    }

    /// <summary>
    /// An on-call engineer keeps a running execution open: a new output line and each step's transition appear without a
    /// reload (the step waits, between its two lines, for a file the test writes once it has seen the first one).
    /// </summary>
    [Fact]
    public async Task OnCallSeesNewOutputAndStepTransitions_WithoutReloading()
    {
        const string name = "e2e-live-watch";
        var go = $"/tmp/rbp-e2e-go-{Guid.NewGuid():N}";
        using var admin = Api(Portal.ApiToken);
        var (_, _, status, _) = await OpenedPipelineRunAsync(admin, name, $$"""
            apiVersion: runbooks/v1
            name: e2e-live-watch
            title: Live watch
            type: deployment
            steps:
              - id: rollout
                name: Roll out
                action: shell
                run: echo "first line"; while [ ! -e {{go}} ]; do sleep 0.1; done; echo "second line"
              - id: verify
                name: Verify
                action: shell
                run: echo "verified"
            """, "oncall");
        await Page.EvaluateAsync("() => { window.__rbpE2eDocument = true; }");
        var log = Page.Locator("[data-testid=log-lines]");
        var steps = Page.Locator("[data-testid=steps] > [data-step]");
        await Expect(log).ToContainTextAsync("first line");
        await Expect(status).ToHaveAttributeAsync("data-status", "Running");
        await Expect(steps.Nth(0)).ToHaveAttributeAsync("data-status", "Running");
        await Expect(steps.Nth(0).Locator("[data-testid=step-duration]")).ToContainTextAsync("running for");
        await Expect(steps.Nth(1)).ToHaveAttributeAsync("data-status", "Pending");
        Assert.DoesNotContain("second line", await log.TextContentAsync());
        await ScreenshotAsync("execution-live-watch.png");

        await File.WriteAllTextAsync(go, "go");
        try
        {
            await Expect(log, "the new line appears without a reload").ToContainTextAsync("second line");
            await Expect(steps.Nth(0), "the step's transition appears").ToHaveAttributeAsync("data-status", "Succeeded");
            await Expect(steps.Nth(1)).ToHaveAttributeAsync("data-status", "Succeeded");
            await Expect(log).ToContainTextAsync("verified");
            await Expect(status).ToHaveAttributeAsync("data-status", "Succeeded");
            await Expect(steps.Nth(0).Locator("[data-testid=step-duration]")).ToContainTextAsync("took");
        }
        finally
        {
            File.Delete(go);
        }
        Assert.True(await Page.EvaluateAsync<bool>("() => window.__rbpE2eDocument === true"), "the execution page was reloaded");
        await ScreenshotAsync("execution-live-watch-done.png");
        await ExpectAccessibleAsync(Page, "the execution page of a finished run");
        await OnAPhoneAsync(Page, "execution-live-watch-phone.png", "the execution page on a phone", tablesFit: false);
    }

    [Fact]
    public async Task OperatorCancelsAHangingRun_WithRollback_InTheBrowser()
    {
        const string name = "e2e-long-backup";
        using var admin = Api(Portal.ApiToken);
        var (_, _, status, timeline) = await OpenedPipelineRunAsync(admin, name, LongYaml, "canceller");
        var copying = timeline.Locator(".rbp-output").Filter(new() { HasText = "copying, helper pid" });
        await Expect(copying, "the hanging step is running").ToHaveCountAsync(1);
        await Expect(status).ToHaveAttributeAsync("data-status", "Running");
        var helper = int.Parse(Regex.Match(await copying.InnerTextAsync(), @"pid (\d+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);

        await Page.Locator("[data-testid=cancel]").ClickAsync();
        var dialog = Page.Locator(".mud-dialog");
        await Expect(dialog).ToBeVisibleAsync();
        await dialog.Locator("[data-testid=cancel-rollback]").ClickAsync();
        await ScreenshotAsync("cancel-dialog.png");
        await dialog.Locator("[data-testid=cancel-confirm]").ClickAsync();

        await Expect(status, "the run ends Cancelled, shown without a reload").ToHaveAttributeAsync("data-status", "Cancelled");
        await Expect(timeline, "the succeeded step's rollback ran").ToContainTextAsync("snapshot deleted");
        var snapshot = Page.Locator("[data-testid=steps] > [data-step]").Nth(0);
        await Expect(snapshot).ToHaveAttributeAsync("data-status", "RolledBack");
        await Expect(snapshot.Locator(".mud-chip")).ToHaveTextAsync("Rolled back");
        await ScreenshotAsync("execution-cancelled.png");
        Assert.False(Directory.Exists($"/proc/{helper}") && !File.ReadAllText($"/proc/{helper}/stat").Contains(") Z ", StringComparison.Ordinal),
            $"the process {helper} the cancelled step started is still running");
    }

    /// <summary>
    /// An on-call engineer cancels a deploy whose step hangs, with rollback, and the rollback hangs too: the hanging
    /// step shows Cancelled, "Stop rollback" (after a confirmation) stops the hung rollback, and the run ends Failed with
    /// that rollback marked failed — on a phone too, with no serious accessibility violation.
    /// </summary>
    [Fact]
    public async Task OnCallStopsAHungRollback_FromTheExecutionPage()
    {
        const string name = "e2e-hung-rollback";
        using var admin = Api(Portal.ApiToken);
        var (_, _, status, timeline) = await OpenedPipelineRunAsync(admin, name, """
            apiVersion: runbooks/v1
            name: e2e-hung-rollback
            title: Hung rollback
            type: deployment
            steps:
              - id: switch
                name: Switch traffic
                action: shell
                run: echo "traffic switched"
                rollback:
                  action: shell
                  run: echo "switching back, waiting for the load balancer"; sleep 300
              - id: migrate
                name: Migrate
                action: shell
                run: echo "migrating"; sleep 300
            """, "stopper");
        await Expect(timeline.Locator(".rbp-output").Filter(new() { HasText = "migrating" })).ToHaveCountAsync(1);

        await Page.Locator("[data-testid=cancel]").ClickAsync();
        var dialog = Page.Locator(".mud-dialog");
        await dialog.Locator("[data-testid=cancel-rollback]").ClickAsync();
        await dialog.Locator("[data-testid=cancel-confirm]").ClickAsync();

        await Expect(status, "the run rolls back").ToHaveAttributeAsync("data-status", "RollingBack");
        var migrate = Page.Locator("[data-testid=steps] > [data-step]").Nth(1);
        await Expect(migrate, "the hanging step is Cancelled, not Failed").ToHaveAttributeAsync("data-status", "Cancelled");
        await Expect(migrate.Locator(".mud-chip")).ToHaveTextAsync("Cancelled");
        await Expect(timeline).ToContainTextAsync("switching back, waiting for the load balancer");
        await ScreenshotAsync("execution-rolling-back.png");
        await ExpectAccessibleAsync(Page, "the execution page while it rolls back");

        await Page.Locator("[data-testid=stop-rollback]").ClickAsync();
        var confirm = Page.Locator(".mud-dialog").Filter(new() { HasText = "Stop the rollback?" });
        await Expect(confirm).ToContainTextAsync("the rollbacks not yet run are not run");
        await ScreenshotAsync("stop-rollback-dialog.png");
        await confirm.GetByRole(AriaRole.Button, new() { Name = "Stop rollback" }).ClickAsync();

        await Expect(status, "stopping the rollback ends the run Failed, shown without a reload").ToHaveAttributeAsync("data-status", "Failed");
        var switched = Page.Locator("[data-testid=steps] > [data-step]").Nth(0);
        await Expect(switched).ToHaveAttributeAsync("data-status", "RollbackFailed");
        await Expect(Page.Locator("[data-testid=stop-rollback]")).ToHaveCountAsync(0);
        await ScreenshotAsync("execution-rollback-stopped.png");
        await ExpectAccessibleAsync(Page, "the execution page after the rollback was stopped");
        await OnAPhoneAsync(Page, "execution-rollback-stopped-phone.png", "the execution page on a phone", tablesFit: false);
    }

    /// <summary>An operator (with an API token) and the runbook <paramref name="yaml"/> published: created and submitted by the admin, approved by a second author.</summary>
    private async Task<(string Email, string Password, string Token)> OperatorAndPublishedRunbookAsync(HttpClient admin, string name, string yaml, string who)
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var email = $"{who}-{suffix}@e2e.test";
        var password = char.ToUpperInvariant(who[0]) + who[1..] + "-" + suffix + "!";
        var reviewerEmail = $"reviewer-{who}-{suffix}@e2e.test";
        await CreateUserAsync(admin, email, password, "Operator");
        await CreateUserAsync(admin, reviewerEmail, "Reviewer-" + suffix + "!", "Author");
        var reviewerToken = await CreateTokenAsync(admin, reviewerEmail);
        var token = await CreateTokenAsync(admin, email);
        using (var content = new StringContent(yaml, Encoding.UTF8, "application/yaml"))
        using (var created = await admin.PostAsync("/api/runbooks", content))
            await ExpectStatusAsync(created, HttpStatusCode.Created, "POST /api/runbooks");
        using (var submitted = await admin.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { }))
            await ExpectStatusAsync(submitted, HttpStatusCode.OK, "submit v1");
        using (var reviewer = Api(reviewerToken))
        using (var approved = await reviewer.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { }))
            await ExpectStatusAsync(approved, HttpStatusCode.OK, "approve v1 (second author)");
        return (email, password, token);
    }

    /// <summary>
    /// The runbook <paramref name="yaml"/> published, a run of it started through the API by its operator (as a
    /// pipeline would), and that operator signed in on the run's page.
    /// </summary>
    private async Task<(string ExecutionId, string OperatorEmail, ILocator Status, ILocator Timeline)> OpenedPipelineRunAsync(HttpClient admin, string name, string yaml, string who)
    {
        var (email, password, token) = await OperatorAndPublishedRunbookAsync(admin, name, yaml, who);
        var executionId = await StartByApiAsync(token, name);
        await SignInAsync(email, password);
        var (status, timeline) = await OpenExecutionAsync(executionId, name);
        return (executionId, email, status, timeline);
    }

    /// <summary>Opens an execution's page; answers its status chip and its timeline.</summary>
    private async Task<(ILocator Status, ILocator Timeline)> OpenExecutionAsync(string executionId, string name)
    {
        await Page.GotoAsync($"/executions/{executionId}");
        await WaitForInteractiveAsync($"{name} v1");
        return (Page.Locator("h1").Locator("xpath=..").Locator("[data-status]"), Page.Locator("[data-testid=timeline]"));
    }

    /// <summary>Starts <paramref name="name"/> through the API, as a pipeline would; answers the execution id.</summary>
    private async Task<string> StartByApiAsync(string token, string name)
    {
        using var client = Api(token);
        using var started = await client.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } });
        var body = await started.Content.ReadAsStringAsync();
        Assert.True(started.IsSuccessStatusCode, $"starting {name} answered {(int)started.StatusCode}: {body}");
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("id").GetString()!;
    }
}
