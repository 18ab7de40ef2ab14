using Microsoft.EntityFrameworkCore;
using Bunit;
using Microsoft.AspNetCore.Components;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Components.Layout;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Approvals;
using RunbookPortal.Web.Features.Executions;
using RunbookPortal.Web.Features;
using Microsoft.Extensions.DependencyInjection;

namespace RunbookPortal.Web.Tests.Components;

public sealed class LayoutTests : PortalBunitContext
{
    private readonly ExecutionNotifier _notifier;

    public LayoutTests() => _notifier = AddPortalStore();

    /// <summary>A pending request that <c>approver_role: Approver</c> people may decide, requested by <paramref name="by"/>.</summary>
    private async Task<Execution> PendingRequestAsync(string by)
    {
        var execution = new Execution
        {
            Id = Guid.NewGuid(), RunbookVersionId = Guid.NewGuid(), RunbookName = "web-deploy", Version = 1, Status = ExecutionStatus.AwaitingApproval,
            RequestedBy = by, RequestedAt = DateTime.UtcNow, ParametersJson = "{}",
        };
        await WithStoreAsync(async db =>
        {
            db.Executions.Add(execution);
            ApprovalService.Open(db, execution, new RunbookPortal.Engine.Runbooks.ApprovalPolicy(1, "Approver", new Dictionary<string, string>(), null), null, DateTime.UtcNow);
            await db.SaveChangesAsync();
        });
        return execution;
    }

    /// <summary>The person in the store with this role (the badge reads roles from the store, not the cookie).</summary>
    private Task UserAsync(string email, string role) => WithStoreAsync(async db =>
    {
        var roleRow = await db.Roles.FirstOrDefaultAsync(r => r.Name == role);
        if (roleRow is null)
            db.Roles.Add(roleRow = new Microsoft.AspNetCore.Identity.IdentityRole(role) { NormalizedName = role.ToUpperInvariant() });
        var user = new PortalUser { UserName = email, Email = email, NormalizedEmail = email.ToUpperInvariant(), NormalizedUserName = email.ToUpperInvariant() };
        db.Users.Add(user);
        db.UserRoles.Add(new Microsoft.AspNetCore.Identity.IdentityUserRole<string> { UserId = user.Id, RoleId = roleRow.Id });
        await db.SaveChangesAsync();
    });

    [Fact]
    public async Task Navigation_CountsTheRequestsWaitingForMe_AndTheBadgeUpdatesLive()
    {
        SignInAs("approver@portal.test", "Approver");
        await UserAsync("approver@portal.test", "Approver");
        await PendingRequestAsync("op@portal.test");
        await PendingRequestAsync("approver@portal.test"); // my own: not mine to decide
        var cut = RenderWithAuth<NavMenu>();
        cut.WaitForAssertion(() => Assert.Equal("1", cut.Find("[data-testid=approvals-badge]").TextContent.Trim()));

        var another = await PendingRequestAsync("op2@portal.test");
        _notifier.Publish(new ExecutionEventRecord { ExecutionId = another.Id, Seq = 1, Kind = "execution_awaiting_approval", DataJson = "{}" });
        cut.WaitForAssertion(() => Assert.Equal("2", cut.Find("[data-testid=approvals-badge]").TextContent.Trim()));
        Assert.Equal("2 waiting for your approval", cut.Find("[data-testid=approvals-badge]").GetAttribute("aria-label"));
    }

    [Fact]
    public async Task Navigation_ShowsNoBadge_ToSomeoneWhoCannotApprove()
    {
        SignInAs("op@portal.test", "Operator");
        await UserAsync("op@portal.test", "Operator");
        await PendingRequestAsync("op2@portal.test");
        var cut = RenderWithAuth<NavMenu>();
        cut.WaitForAssertion(() => Assert.Contains("Approvals", cut.Markup));
        Assert.Empty(cut.FindAll("[data-testid=approvals-badge]"));
    }

    private void Publish(Execution execution, string kind) =>
        _notifier.Publish(new ExecutionEventRecord { ExecutionId = execution.Id, Seq = 1, Kind = kind, DataJson = "{}" });

    /// <summary>Decides <paramref name="execution"/>'s request in the store, as ApprovalService would have.</summary>
    private Task DecideAsync(Execution execution, bool approve, string by, string? comment) => WithStoreAsync(async db =>
    {
        var request = await db.ApprovalRequests.Include(a => a.Decisions).SingleAsync(a => a.ExecutionId == execution.Id);
        request.Status = approve ? ApprovalStatus.Approved : ApprovalStatus.Rejected;
        request.DecidedAt = DateTime.UtcNow;
        request.Decisions.Add(new ApprovalDecision { ApprovalRequestId = request.Id, By = by, At = DateTime.UtcNow, Approved = approve, Comment = comment });
        await db.SaveChangesAsync();
    });

    private static string[] Snackbars(IRenderedComponent<MudBlazor.MudSnackbarProvider> snackbars) =>
        snackbars.FindAll(".mud-snackbar .mud-snackbar-content-message").Select(m => m.TextContent.Trim()).ToArray();

    [Fact]
    public async Task ApprovalAlerts_ShowAnApproverEachNewRequestOfTheirRole_NotTheirOwn_AndOpenLeadsToIt()
    {
        SignInAs("approver@portal.test", "Approver");
        var snackbars = Render<MudBlazor.MudSnackbarProvider>();
        RenderWithAuth<ApprovalAlerts>();
        var own = await PendingRequestAsync("approver@portal.test");
        var theirs = await PendingRequestAsync("op@portal.test");

        Publish(own, EventKinds.ExecutionAwaitingApproval); // mine: nothing for me to decide
        Publish(theirs, EventKinds.ExecutionAwaitingApproval);
        snackbars.WaitForAssertion(() => Assert.Equal(["op@portal.test asks for approval: web-deploy v1 (every run: 1 approval from Approver)."], Snackbars(snackbars)));

        snackbars.Find(".mud-snackbar button.mud-snackbar-action-button, .mud-snackbar .mud-snackbar-content-action button").Click();
        var approvalId = await Services.GetRequiredService<IServiceScopeFactory>().InScopeAsync<ApprovalService, Guid>(async s => (await s.ForExecutionAsync(theirs.Id))!.Id);
        Assert.EndsWith($"/approvals/{approvalId}", Services.GetRequiredService<NavigationManager>().Uri);
    }

    [Fact]
    public async Task ApprovalAlerts_ShowNoNewRequest_ToSomeoneWithoutTheApproverRole()
    {
        SignInAs("op2@portal.test", "Operator");
        var snackbars = Render<MudBlazor.MudSnackbarProvider>();
        RenderWithAuth<ApprovalAlerts>();
        var request = await PendingRequestAsync("op@portal.test");
        var mine = await PendingRequestAsync("op2@portal.test");

        Publish(request, EventKinds.ExecutionAwaitingApproval);
        // A later alert this person does get (their own run's decision) shows the new request's alert did not come.
        await DecideAsync(mine, approve: true, "approver@portal.test", null);
        Publish(mine, EventKinds.ExecutionApproved);
        snackbars.WaitForAssertion(() => Assert.Equal(["Your run of web-deploy v1 was approved and is starting."], Snackbars(snackbars)));
    }

    [Fact]
    public async Task ApprovalAlerts_TellTheRequesterTheDecision_ApprovedOrRejectedWithWhoAndWhy_AndNotOthersDecisions()
    {
        SignInAs("op@portal.test", "Operator");
        var snackbars = Render<MudBlazor.MudSnackbarProvider>();
        RenderWithAuth<ApprovalAlerts>();
        var approved = await PendingRequestAsync("op@portal.test");
        var rejected = await PendingRequestAsync("op@portal.test");
        var someoneElses = await PendingRequestAsync("op2@portal.test");

        await DecideAsync(someoneElses, approve: false, "approver@portal.test", "not yours");
        Publish(someoneElses, EventKinds.ExecutionRejected);
        await DecideAsync(approved, approve: true, "approver@portal.test", null);
        Publish(approved, EventKinds.ExecutionApproved);
        snackbars.WaitForAssertion(() => Assert.Equal(["Your run of web-deploy v1 was approved and is starting."], Snackbars(snackbars)));

        await DecideAsync(rejected, approve: false, "approver@portal.test", "wrong window");
        Publish(rejected, EventKinds.ExecutionRejected);
        snackbars.WaitForAssertion(() => Assert.Contains("Your run of web-deploy v1 was rejected by approver@portal.test: wrong window", Snackbars(snackbars)));
        Assert.Equal(2, Snackbars(snackbars).Length);

        snackbars.FindAll(".mud-snackbar").Single(s => s.TextContent.Contains("rejected")).QuerySelector("button.mud-snackbar-action-button, .mud-snackbar-content-action button")!.Click();
        Assert.EndsWith($"/executions/{rejected.Id}", Services.GetRequiredService<NavigationManager>().Uri);
    }

    private static string[] LinkTexts(IRenderedComponent<Microsoft.AspNetCore.Components.Authorization.CascadingAuthenticationState> cut) =>
        cut.FindAll("a.mud-nav-link").Select(a => a.TextContent.Trim()).ToArray();

    [Fact]
    public void Navigation_ForAnOperator_ShowsTheWorkAreas_ButNotAuditOrAdmin()
    {
        SignInAs("op@portal.test", "Operator");
        var cut = RenderWithAuth<NavMenu>();

        Assert.Equal(["Dashboard", "Runbooks", "Executions", "Running now", "Approvals"], LinkTexts(cut));
    }

    [Fact]
    public void Navigation_ForSomeoneWithoutARole_HasNoRunningNowLink()
    {
        SignInAs("nobody@portal.test");
        var cut = RenderWithAuth<NavMenu>();

        Assert.DoesNotContain("Running now", LinkTexts(cut));
        Assert.Empty(cut.FindAll("[data-testid=nav-running]"));
    }

    [Fact]
    public void Navigation_ForAnAuditor_AddsAudit()
    {
        SignInAs("aud@portal.test", "Auditor");
        var cut = RenderWithAuth<NavMenu>();

        Assert.Equal(["Dashboard", "Runbooks", "Executions", "Running now", "Approvals", "Audit"], LinkTexts(cut));
    }

    [Fact]
    public void Navigation_ForAnAdmin_ShowsAuditAndTheAdminGroup()
    {
        SignInAs("admin@portal.test", "Admin");
        var cut = RenderWithAuth<NavMenu>();

        Assert.Equal(["Dashboard", "Runbooks", "Executions", "Running now", "Approvals", "Audit", "Users", "API tokens"], LinkTexts(cut));
        Assert.Contains("Admin", cut.Find(".mud-nav-group").TextContent);
        Assert.Equal("/admin/users", cut.FindAll("a.mud-nav-link").Single(a => a.TextContent.Trim() == "Users").GetAttribute("href"));
    }

    [Fact]
    public void Layout_ShowsBrandUserAndBody_AndTheThemeToggleRemembersTheChoice()
    {
        SignInAs("admin@portal.test", "Admin");
        JSInterop.Setup<string?>("rbp.getTheme").SetResult(null);
        var cut = RenderWithAuth<MainLayout>(p => p.Add(l => l.Body, (RenderFragment)(b => b.AddMarkupContent(0, "<p id=\"page-body\">hello</p>"))));

        Assert.Contains("RunbookPortal", cut.Find(".mud-appbar").TextContent);
        Assert.Contains("admin@portal.test", cut.Find(".mud-appbar").TextContent);
        Assert.Equal("hello", cut.Find("#page-body").TextContent);
        Assert.NotNull(cut.Find("[aria-label='Toggle navigation']"));

        var toggle = cut.Find("[data-testid=theme-toggle]");
        Assert.Equal("Toggle dark theme", toggle.GetAttribute("aria-label"));
        toggle.Click();

        Assert.Equal("dark", JSInterop.VerifyInvoke("rbp.setTheme").Arguments.Single());
    }
}
