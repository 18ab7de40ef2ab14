using Bunit;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using MudBlazor;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Features.Runbooks;
using RunbookPortal.Web.Infrastructure;
using RunbookPortal.Web.Tests.Infrastructure;
using RunbookPortal.Web.Tests.Integration;

namespace RunbookPortal.Web.Tests.Components;

/// <summary>What the execution page shows of a run's approval and of a manual step it waits at, and the start confirmation.</summary>
public sealed class ExecutionApprovalComponentTests : PortalBunitContext
{
    private static readonly DateTime Now = new(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc);

    public ExecutionApprovalComponentTests() => Services.AddSingleton<TimeProvider>(new FakeTimeProvider(Now));

    private static ApprovalView Approval(ApprovalStatus status = ApprovalStatus.Pending, int approvals = 1, ApprovalDecisionView? rejection = null) => new(
        Guid.NewGuid(), Guid.NewGuid(), "web-deploy", 3, "op@portal.test", Now.AddMinutes(-20), "Hotfix for INC-42", 2, "Approver",
        Enumerable.Range(0, approvals).Select(i => new ApprovalDecisionView($"approver{i}@portal.test", Now.AddMinutes(-5), i == 0 ? "fine by me" : null)).ToList(),
        rejection, Now.AddHours(3), status, status == ApprovalStatus.Pending ? null : Now,
        new Dictionary<string, string> { ["environment"] = "production" },
        new Dictionary<string, string> { ["environment"] = "production" });

    [Fact]
    public void ApprovalPanel_WhilePending_ShowsCountApproverPolicyExpiryAndWhoElseMayApprove()
    {
        var approval = Approval();
        var cut = Render<ApprovalStatusPanel>(p => p
            .Add(c => c.Approval, approval)
            .Add(c => c.MayDecide, ["approver0@portal.test", "approver1@portal.test"]));

        var panel = cut.Find("[data-testid=approval-panel]");
        Assert.Contains("waits for approval", panel.TextContent);
        Assert.Equal("1 of 2 approvals", cut.Find("[data-testid=approval-count]").TextContent.Trim());
        var approvers = cut.Find("[data-testid=approval-approvers]").TextContent;
        Assert.Contains("approver0@portal.test", approvers);
        Assert.Contains("fine by me", approvers);
        Assert.Contains("environment=production: 2 approvals from Approver", cut.Find("[data-testid=approval-policy]").TextContent);
        var expiry = cut.Find("[data-testid=approval-expiry]").TextContent;
        Assert.Contains("2026-12-02 13:00:00 UTC", expiry);
        Assert.Contains("in 3 h", expiry);
        var mayDecide = cut.Find("[data-testid=approval-may-decide]").TextContent;
        Assert.Contains("approver1@portal.test", mayDecide);
        Assert.DoesNotContain("approver0@portal.test", mayDecide); // already approved
        Assert.Contains("Hotfix for INC-42", cut.Find("[data-testid=approval-request]").TextContent);
        var link = cut.Find("[data-testid=approval-open]");
        Assert.Equal("Open in the approval queue", link.TextContent.Trim());
        Assert.Equal($"/approvals/{approval.Id}", link.GetAttribute("href"));
    }

    [Fact]
    public void ApprovalPanel_WhenNobodyHoldsTheRole_SaysToAskAnAdmin()
    {
        var cut = Render<ApprovalStatusPanel>(p => p.Add(c => c.Approval, Approval(approvals: 0)).Add(c => c.MayDecide, []));

        Assert.Equal("0 of 2 approvals", cut.Find("[data-testid=approval-count]").TextContent.Trim());
        Assert.Contains("holds the Approver role yet — ask an Admin", cut.Find("[data-testid=approval-may-decide]").TextContent);
    }

    [Fact]
    public void ApprovalPanel_AfterARejection_ShowsWhoRejectedAndWhy_AndNoLongerWhoMayApprove()
    {
        var rejection = new ApprovalDecisionView("approver1@portal.test", Now, "not during the freeze");
        var cut = Render<ApprovalStatusPanel>(p => p.Add(c => c.Approval, Approval(ApprovalStatus.Rejected, rejection: rejection)).Add(c => c.MayDecide, ["approver1@portal.test"]));

        Assert.Equal("Rejected", cut.Find("[data-testid=approval-status]").TextContent.Trim());
        var outcome = cut.Find("[data-testid=approval-outcome]").TextContent;
        Assert.Contains("Rejected by approver1@portal.test (2026-12-02 10:00:00 UTC): “not during the freeze”.", System.Text.RegularExpressions.Regex.Replace(outcome, @"\s+", " "));
        Assert.Contains("not during the freeze", outcome);
        Assert.Empty(cut.FindAll("[data-testid=approval-may-decide]"));
    }

    [Fact]
    public void ApprovalPanel_AfterExpiry_SaysSo()
    {
        var cut = Render<ApprovalStatusPanel>(p => p.Add(c => c.Approval, Approval(ApprovalStatus.Expired)));

        Assert.Equal("Expired", cut.Find("[data-testid=approval-status]").TextContent.Trim());
        var outcome = cut.Find("[data-testid=approval-outcome]").TextContent;
        Assert.Contains("with 1 of 2 approvals", outcome);
        Assert.Contains("Expired 2026-12-02 13:00:00 UTC", outcome);
        Assert.DoesNotContain("@", outcome); // Razor text, never its source
    }

    [Fact]
    public void ApprovalPanel_AfterApproval_SaysWhenAndWithHowMany()
    {
        var cut = Render<ApprovalStatusPanel>(p => p.Add(c => c.Approval, Approval(ApprovalStatus.Approved, approvals: 2)));

        var outcome = cut.Find("[data-testid=approval-outcome]").TextContent;
        Assert.Contains("Approved 2026-12-02 10:00:00 UTC with 2 of 2 approvals; the run was queued.", System.Text.RegularExpressions.Regex.Replace(outcome, @"\s+", " "));
        Assert.DoesNotContain("@", outcome);
    }

    [Fact]
    public void ManualPanel_ShowsInstructionsAsText_NeverAsMarkup_WithRoleDeadlineAndBothButtons()
    {
        SignInAs("op@portal.test", "Operator");
        var cut = RenderWithAuth<ManualStepPanel>(p => p
            .Add(c => c.StepId, "verify")
            .Add(c => c.StepName, "Watch dashboards")
            .Add(c => c.Instructions, "<b>x</b> then continue")
            .Add(c => c.Role, "Operator")
            .Add(c => c.Deadline, Now.AddMinutes(30)));

        Assert.Contains("Watch dashboards", cut.Find("[data-testid=manual-step-name]").TextContent);
        var instructions = cut.Find("[data-testid=manual-instructions]");
        Assert.Equal("<b>x</b> then continue", instructions.TextContent);
        Assert.Empty(instructions.QuerySelectorAll("b"));
        Assert.Contains("Operator role (Admins too)", cut.Find("[data-testid=manual-role]").TextContent);
        Assert.Contains("in 30 min", cut.Find("[data-testid=manual-deadline]").TextContent);
        Assert.Equal("Continue", cut.Find("[data-testid=manual-continue]").TextContent.Trim());
        var abort = cut.Find("[data-testid=manual-abort]");
        Assert.Equal("Abort", abort.TextContent.Trim());
        Assert.Contains("mud-button-outlined-error", abort.ClassName);
        var comment = cut.Find("textarea[data-testid=manual-comment]");
        Assert.Equal("Comment on your decision", comment.GetAttribute("aria-label"));
        Assert.Contains("Comment on your decision", cut.Find($"label[for='{comment.Id}']").TextContent);
    }

    [Fact]
    public void ManualPanel_Continue_CallsBackWithTheComment()
    {
        SignInAs("op@portal.test", "Operator");
        string? continued = "not called";
        var cut = RenderWithAuth<ManualStepPanel>(p => p
            .Add(c => c.StepId, "verify")
            .Add(c => c.Role, "Operator")
            .Add(c => c.OnContinue, (string? comment) => continued = comment));

        cut.Find("textarea[data-testid=manual-comment]").Input("  error rates flat  ");
        cut.Find("[data-testid=manual-continue]").Click();

        Assert.Equal("error rates flat", continued);
    }

    [Fact]
    public void ManualPanel_ButtonsStayDisabled_WhileTheDecisionIsInFlight()
    {
        SignInAs("op@portal.test", "Operator");
        var pending = new TaskCompletionSource();
        var calls = 0;
        var cut = RenderWithAuth<ManualStepPanel>(p => p
            .Add(c => c.StepId, "verify")
            .Add(c => c.Role, "Operator")
            .Add(c => c.OnContinue, (string? _) => { calls++; return pending.Task; }));

        cut.Find("[data-testid=manual-continue]").Click();
        Assert.True(cut.Find("[data-testid=manual-continue]").HasAttribute("disabled"));
        Assert.True(cut.Find("[data-testid=manual-abort]").HasAttribute("disabled"));

        cut.InvokeAsync(pending.SetResult);
        cut.WaitForAssertion(() => Assert.False(cut.Find("[data-testid=manual-continue]").HasAttribute("disabled")));
        Assert.Equal(1, calls);
    }

    [Fact]
    public void ManualPanel_Abort_AsksFirst_ThatARequiredStepRollsBackTheStepsBefore_ThenCallsBack()
    {
        SignInAs("op@portal.test", "Operator");
        var dialogs = Render<MudDialogProvider>();
        string? aborted = "not called";
        var cut = RenderWithAuth<ManualStepPanel>(p => p
            .Add(c => c.StepId, "verify")
            .Add(c => c.StepName, "Watch dashboards")
            .Add(c => c.Role, "Operator")
            .Add(c => c.Required, true)
            .Add(c => c.OnAbort, (string? comment) => aborted = comment));

        cut.Find("[data-testid=manual-abort]").Click();

        dialogs.WaitForAssertion(() => Assert.Contains("rolled back", dialogs.Find(".mud-dialog").TextContent));
        Assert.Contains("Abort “Watch dashboards”?", dialogs.Find(".mud-dialog").TextContent);
        Assert.Equal("not called", aborted);
        dialogs.FindAll(".mud-dialog button").Single(b => b.TextContent.Trim() == "Abort step").Click();

        cut.WaitForAssertion(() => Assert.Null(aborted));
    }

    [Fact]
    public void ManualPanel_ForSomeoneWithoutTheRole_ShowsNoButtons_AndSaysWhoMay()
    {
        SignInAs("reader@portal.test", "Auditor");
        var cut = RenderWithAuth<ManualStepPanel>(p => p.Add(c => c.StepId, "verify").Add(c => c.Role, "Operator"));

        Assert.Empty(cut.FindAll("[data-testid=manual-continue]"));
        Assert.Contains("Only people with the Operator role (or an Admin)", cut.Find("[data-testid=manual-not-yours]").TextContent);
    }

    [Fact]
    public async Task StartConfirm_ForARunThatNeedsApproval_WarnsWithThePolicy_AndAsksToRequestApproval()
    {
        var dialogs = Render<MudDialogProvider>();
        var service = Services.GetRequiredService<IDialogService>();
        var parameters = new DialogParameters<StartConfirmDialog>
        {
            { d => d.Title, "Request approval for this run?" },
            { d => d.RunbookTitle, "Web deploy" },
            { d => d.Version, 3 },
            { d => d.Values, [KeyValuePair.Create("environment", "production")] },
            { d => d.Policy, "environment=production: 2 approvals from Approver, within 4h" },
        };
        var reference = await dialogs.InvokeAsync(() => service.ShowAsync<StartConfirmDialog>("Request approval for this run?", parameters));

        dialogs.WaitForAssertion(() => Assert.Contains("This run needs approval — environment=production: 2 approvals from Approver, within 4h",
            dialogs.Find("[data-testid=start-confirm-approval]").TextContent));
        Assert.Contains("environment = production", dialogs.Find("[data-testid=start-confirm-production]").TextContent);
        var yes = dialogs.Find("[data-testid=start-confirm-yes]");
        Assert.Equal("Request approval", yes.TextContent.Trim());
        Assert.Contains("mud-button-filled-warning", yes.ClassName);

        yes.Click();
        var result = await reference.Result;
        Assert.False(result!.Canceled);
    }

    [Fact]
    public async Task StartConfirm_ForAnOrdinaryRun_IsPlain_AndSaysStart()
    {
        var dialogs = Render<MudDialogProvider>();
        var service = Services.GetRequiredService<IDialogService>();
        var parameters = new DialogParameters<StartConfirmDialog>
        {
            { d => d.RunbookTitle, "Rotate logs" },
            { d => d.Version, 1 },
            { d => d.Values, [KeyValuePair.Create("environment", "staging")] },
        };
        await dialogs.InvokeAsync(() => service.ShowAsync<StartConfirmDialog>("Start this runbook?", parameters));

        dialogs.WaitForAssertion(() => Assert.Equal("Start", dialogs.Find("[data-testid=start-confirm-yes]").TextContent.Trim()));
        Assert.Empty(dialogs.FindAll("[data-testid=start-confirm-approval]"));
        Assert.Empty(dialogs.FindAll("[data-testid=start-confirm-production]"));
    }
}

/// <summary>
/// The execution and start pages on the portal's real services (SQLite, the real worker): the approval panel follows
/// each decision as it is recorded, a manual step is decided from its panel, the start form names the policy.
/// </summary>
public sealed class ExecutionApprovalPageTests : PortalBunitContext, IClassFixture<SqliteEngineFixture>
{
    private readonly PortalFactory _portal;

    public ExecutionApprovalPageTests(SqliteEngineFixture fixture)
    {
        _portal = fixture.Portal;
        // The pages open their own scopes (IServiceScopeFactory): each of those gets its services from a portal scope.
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

    private static string Name(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..28];

    private static string GatedYaml(string name) => $$$"""
        apiVersion: runbooks/v1
        name: {{{name}}}
        title: Gated deploy
        type: deployment
        parameters:
          environment: { type: string, required: true }
        approval:
          required_approvals: 2
          approver_role: Approver
          when: { environment: production }
          expires_after: 4h
        steps:
          - id: deploy
            name: Deploy
            action: shell
            run: "true"
        """;

    private async Task<T> WithAsync<TService, T>(Func<TService, Task<T>> work) where TService : notnull => await _portal.WithServiceAsync(work);

    [Fact]
    public async Task ExecutionPage_ShowsTheApproval_AndFollowsEachDecisionAsItIsRecorded()
    {
        var name = Name("page-gate");
        await ExecutionApiTests.PublishAsync(_portal, GatedYaml(name), name);
        var (_, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        var (_, first, _) = await _portal.CreateUserAsync("approver", "Approver");
        var (_, second, _) = await _portal.CreateUserAsync("approver", "Approver");
        var started = await WithAsync<ExecutionService, StartResult>(s => s.StartAsync(op, false, name,
            new StartExecutionRequest(new() { ["environment"] = System.Text.Json.JsonSerializer.SerializeToElement("production") }, Comment: "hotfix for INC-7")));
        var id = started.Id!.Value;
        SignInAs(op, "Operator");

        var cut = RenderWithAuth<ExecutionPage>(p => p.Add(c => c.Id, id));

        cut.WaitForAssertion(() => Assert.Equal("0 of 2 approvals", cut.Find("[data-testid=approval-count]").TextContent.Trim()), TimeSpan.FromSeconds(10));
        Assert.Contains("environment=production: 2 approvals from Approver", cut.Find("[data-testid=approval-policy]").TextContent);
        Assert.Contains("in 4 h", cut.Find("[data-testid=approval-expiry]").TextContent);
        var mayDecide = cut.Find("[data-testid=approval-may-decide]").TextContent;
        Assert.Contains(first, mayDecide);
        Assert.Contains(second, mayDecide);
        Assert.DoesNotContain(op, mayDecide);
        Assert.Contains("hotfix for INC-7", cut.Find("[data-testid=approval-request]").TextContent);
        var approvalId = (await WithAsync<ApprovalService, ApprovalView?>(s => s.ForExecutionAsync(id)))!.Id;
        Assert.Equal($"/approvals/{approvalId}", cut.Find("[data-testid=approval-open]").GetAttribute("href"));

        Assert.True((await WithAsync<ApprovalService, OperationResult>(s => s.ApproveAsync(first, approvalId, "looks right"))).Succeeded);
        cut.WaitForAssertion(() => Assert.Equal("1 of 2 approvals", cut.Find("[data-testid=approval-count]").TextContent.Trim()), TimeSpan.FromSeconds(10));
        Assert.Contains(first, cut.Find("[data-testid=approval-approvers]").TextContent);
        Assert.Contains("looks right", cut.Find("[data-testid=approval-approvers]").TextContent);
        Assert.Contains($"approved by {first} (1 of 2): looks right", cut.Find("[data-testid=timeline]").TextContent);

        Assert.True((await WithAsync<ApprovalService, OperationResult>(s => s.ApproveAsync(second, approvalId, null))).Succeeded);
        cut.WaitForAssertion(() => Assert.Equal("Approved", cut.Find("[data-testid=approval-status]").TextContent.Trim()), TimeSpan.FromSeconds(10));
        Assert.Contains("with 2 of 2 approvals", cut.Find("[data-testid=approval-outcome]").TextContent);
    }

    [Fact]
    public async Task QueueAndDetailPages_OnTheRealService_ShowASecretParameterAsStars_AndItsValueNowhere()
    {
        var name = Name("page-secret");
        var markers = Path.Combine(Path.GetTempPath(), $"rbp-never-{Guid.NewGuid():N}"); // never created: the run is not approved here
        await ExecutionApiTests.PublishAsync(_portal, ApprovalApiTests.GatedYaml(name, markers), name);
        var (_, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        var (_, approver, _) = await _portal.CreateUserAsync("approver", "Approver");
        var secret = $"s3cr3t-{Guid.NewGuid():N}";
        var started = await WithAsync<ExecutionService, StartResult>(s => s.StartAsync(op, false, name, new StartExecutionRequest(new()
        {
            ["environment"] = System.Text.Json.JsonSerializer.SerializeToElement("production"),
            ["tag"] = System.Text.Json.JsonSerializer.SerializeToElement("pagesecret"),
            ["token"] = System.Text.Json.JsonSerializer.SerializeToElement(secret),
        })));
        Assert.True(started.Id is not null, started.Outcome.ToString());
        var approvalId = (await WithAsync<ApprovalService, ApprovalView?>(s => s.ForExecutionAsync(started.Id!.Value)))!.Id;
        SignInAs(approver, "Approver");

        var queue = RenderWithAuth<ApprovalsPage>();
        queue.WaitForAssertion(() => Assert.Contains(queue.FindAll("[data-testid=approvals-table] tbody tr"), r => r.TextContent.Contains(name)), TimeSpan.FromSeconds(10));
        var row = queue.FindAll("[data-testid=approvals-table] tbody tr").Single(r => r.TextContent.Contains(name));
        Assert.Contains("token = ***", row.QuerySelector("[data-testid=approval-values]")!.TextContent);
        Assert.DoesNotContain(secret, queue.Markup);

        var detail = RenderWithAuth<ApprovalDetailPage>(p => p.Add(c => c.Id, approvalId));
        detail.WaitForAssertion(() => Assert.NotNull(detail.Find("[data-testid=steps-preview]")), TimeSpan.FromSeconds(10));
        Assert.Contains("printf %s '***'", detail.Find("[data-testid=steps-preview]").TextContent);
        var request = detail.Find("[data-testid=approval-request]").TextContent;
        Assert.Contains("token", request);
        Assert.Contains("***", request);
        Assert.NotNull(detail.Find("[data-testid=approve]")); // the approver sees it as one who may decide
        Assert.DoesNotContain(secret, detail.Markup);
    }

    [Fact]
    public async Task ExecutionPage_ForAManualStep_ShowsItsInstructionsAsText_AndContinueCarriesTheRunOn()
    {
        var name = Name("page-manual");
        await ExecutionApiTests.PublishAsync(_portal, $$$"""
            apiVersion: runbooks/v1
            name: {{{name}}}
            title: With a person in the loop
            type: maintenance
            steps:
              - id: check
                name: Watch the dashboards
                action: manual
                instructions: "Check <b>error</b> rates, then continue."
                timeout: 30m
              - id: finish
                action: shell
                run: "true"
            """, name);
        var (_, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        var id = (await WithAsync<ExecutionService, StartResult>(s => s.StartAsync(op, false, name, new StartExecutionRequest([])))).Id!.Value;
        SignInAs(op, "Operator");

        var cut = RenderWithAuth<ExecutionPage>(p => p.Add(c => c.Id, id));

        cut.WaitForAssertion(() => Assert.NotNull(cut.Find("[data-testid=manual-panel]")), TimeSpan.FromSeconds(15));
        Assert.Contains("Watch the dashboards", cut.Find("[data-testid=manual-step-name]").TextContent);
        var instructions = cut.Find("[data-testid=manual-instructions]");
        Assert.Equal("Check <b>error</b> rates, then continue.", instructions.TextContent);
        Assert.Empty(instructions.QuerySelectorAll("b"));
        Assert.Contains("in 30 min", cut.Find("[data-testid=manual-deadline]").TextContent);
        cut.WaitForAssertion(() => Assert.Contains("required step", cut.Find("[data-testid=manual-panel]").TextContent));

        cut.Find("textarea[data-testid=manual-comment]").Input("all green");
        cut.Find("[data-testid=manual-continue]").Click();

        cut.WaitForAssertion(() => Assert.Contains($"continued by {op}: all green", cut.Find("[data-testid=timeline]").TextContent), TimeSpan.FromSeconds(10));
        cut.WaitForAssertion(() => Assert.Equal("Succeeded", cut.Find(".mud-chip[data-status]").GetAttribute("data-status")), TimeSpan.FromSeconds(15));
        Assert.Empty(cut.FindAll("[data-testid=manual-panel]"));
    }

    [Fact]
    public async Task StartPage_NamesThePolicy_AsValuesChange_AndRequestsApprovalOnce_WithTheComment()
    {
        var name = Name("page-start");
        await ExecutionApiTests.PublishAsync(_portal, GatedYaml(name), name);
        var (_, op, _) = await _portal.CreateUserAsync("operator", "Operator");
        SignInAs(op, "Operator");
        var dialogs = Render<MudDialogProvider>();
        var cut = RenderWithAuth<StartExecutionPage>(p => p.Add(c => c.Name, name));
        cut.WaitForAssertion(() => Assert.NotNull(cut.Find("[data-testid=param-environment] input")), TimeSpan.FromSeconds(10));

        cut.Find("[data-testid=param-environment] input").Input("staging");
        Assert.Empty(cut.FindAll("[data-testid=approval-note]"));
        Assert.Contains("These values need no approval", cut.Find("[data-testid=approval-not-needed]").TextContent);

        cut.Find("[data-testid=param-environment] input").Input("production");
        Assert.Equal("This run needs approval — environment=production: 2 approvals from Approver, within 4h. It will wait in the approval queue.",
            cut.Find("[data-testid=approval-note]").TextContent.Trim());
        Assert.Equal("Request approval…", cut.Find("[data-testid=start]").TextContent.Trim());
        cut.Find("textarea[data-testid=approval-comment]").Input("needed for INC-9");

        cut.Find("[data-testid=start]").Click();
        cut.Find("[data-testid=start]").Click(); // a double click: one confirmation, one run
        dialogs.WaitForAssertion(() => Assert.Single(dialogs.FindAll("[data-testid=start-confirm-yes]")));
        Assert.True(cut.Find("[data-testid=start]").HasAttribute("disabled"));
        Assert.Contains("needed for INC-9", dialogs.Find(".mud-dialog").TextContent);
        var yes = dialogs.Find("[data-testid=start-confirm-yes]");
        Assert.Equal("Request approval", yes.TextContent.Trim());
        yes.Click();

        var navigation = Services.GetRequiredService<Microsoft.AspNetCore.Components.NavigationManager>();
        cut.WaitForAssertion(() => Assert.Contains("/executions/", navigation.Uri), TimeSpan.FromSeconds(10));
        var id = Guid.Parse(navigation.Uri[(navigation.Uri.LastIndexOf('/') + 1)..]);
        var approval = await WithAsync<ApprovalService, ApprovalView?>(s => s.ForExecutionAsync(id));
        Assert.Equal("needed for INC-9", approval!.RequestComment);
        var runs = await WithAsync<ExecutionService, (List<ExecutionSummary> Items, int Total)>(s => s.ListAsync(new ExecutionQuery(Runbook: name)));
        Assert.Equal(1, runs.Total);
    }
}
