using Bunit;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Approvals;

namespace RunbookPortal.Web.Tests.Components;

/// <summary>The approval queue and the detail view an approver decides from, as a person sees them.</summary>
public sealed class ApprovalComponentTests : PortalBunitContext
{
    private static readonly DateTime Now = new(2026, 12, 2, 10, 0, 0, DateTimeKind.Utc);

    private static ApprovalView Request(ApprovalStatus status = ApprovalStatus.Pending, string requestedBy = "op@portal.test", int approvals = 1,
        ApprovalDecisionView? rejection = null) => new(
        Guid.NewGuid(), Guid.NewGuid(), "web-deploy", 3, requestedBy, Now.AddMinutes(-20), "Hotfix for <b>INC-42</b>", 2, "Approver",
        Enumerable.Range(0, approvals).Select(i => new ApprovalDecisionView($"approver{i}@portal.test", Now.AddMinutes(-5), i == 0 ? "fine by me" : null)).ToList(),
        rejection, Now.AddHours(3).AddMinutes(30), status, null,
        new Dictionary<string, string> { ["environment"] = "production" },
        new Dictionary<string, string> { ["environment"] = "production", ["db_password"] = "***" });

    private static ApprovalDetail Detail(ApprovalView request, string? baseYaml = "steps: []\n") => new(
        request, "steps:\n  - id: deploy\n", baseYaml is null ? null : 2, baseYaml,
        [new StepPreview("deploy", "Deploy", "shell", "run ./deploy.sh --env 'production' --password ***")],
        ["Build is green"], "Web deploy", ["approver0@portal.test", "approver1@portal.test"]);

    [Fact]
    public void Queue_ShowsEachRequest_WithWhy_ApprovalsSoFar_AndTimeLeft()
    {
        var cut = Render<ApprovalQueueTable>(p => p.Add(c => c.Items, [Request()]).Add(c => c.Now, Now));

        var row = cut.Find("[data-testid=approvals-table] tbody tr");
        Assert.Contains("web-deploy", row.TextContent);
        Assert.Contains("environment=production: 2 approvals from Approver", row.TextContent);
        Assert.Equal("1 of 2", cut.Find("[data-testid=approval-count]").TextContent.Trim());
        Assert.Contains("3 h 30 min left", row.TextContent);
        Assert.Contains("op@portal.test", row.TextContent);
        var values = cut.Find("[data-testid=approval-values]").TextContent;
        Assert.Contains("environment = production", values);
        Assert.Contains("db_password = ***", values);
        Assert.Equal($"/approvals/{cut.Instance.Items![0].Id}", cut.Find("[data-testid=approvals-table] tbody a").GetAttribute("href"));
    }

    [Fact]
    public void Queue_WhenEmpty_SaysWhatWillAppear()
    {
        var cut = Render<ApprovalQueueTable>(p => p.Add(c => c.Items, []).Add(c => c.EmptyText, "Nothing waits for your decision."));
        Assert.Equal("Nothing waits for your decision.", cut.Find("[data-testid=approvals-empty]").TextContent);
    }

    [Fact]
    public void Detail_GivesTheApproverTheSteps_TheDiff_ThePrerequisites_AndTheValuesMasked_AndApprovesWithTheComment()
    {
        SignInAs("approver9@portal.test", "Approver");
        (bool Approve, string? Comment)? decided = null;
        var request = Request();
        var cut = RenderWithAuth<ApprovalDetailView>(p => p
            .Add(c => c.Detail, Detail(request))
            .Add(c => c.User, Principal("approver9@portal.test", "Approver"))
            .Add(c => c.Now, Now)
            .Add(c => c.OnDecide, d => decided = d));

        Assert.Contains("run ./deploy.sh --env 'production' --password ***", cut.Find("[data-testid=steps-preview]").TextContent);
        Assert.NotNull(cut.Find("[data-testid=approval-changes] [data-testid=diff-view]"));
        Assert.Contains("Since version 2", cut.Find("[data-testid=approval-changes]").TextContent);
        Assert.Contains("Build is green", cut.Markup);
        var requestPanel = cut.Find("[data-testid=approval-request]");
        Assert.Contains("db_password", requestPanel.TextContent);
        Assert.Contains("***", requestPanel.TextContent);
        // The requester's comment is text, never markup.
        Assert.Contains("Hotfix for <b>INC-42</b>", requestPanel.TextContent);
        Assert.Empty(requestPanel.QuerySelectorAll("b b"));
        Assert.Contains("approver0@portal.test", cut.Find("[data-testid=approvals-so-far]").TextContent);
        Assert.Contains("1 of 2 approvals so far", cut.Find("[data-testid=approval-why]").TextContent);

        cut.Find("textarea[data-testid=decision-comment], [data-testid=decision-comment] textarea").Input("checked the change ticket");
        cut.Find("[data-testid=approve]").Click();
        Assert.Equal((true, "checked the change ticket"), decided);
    }

    [Fact]
    public void Detail_WithoutAnEarlierGoodRun_ShowsTheWholeVersion()
    {
        SignInAs("approver9@portal.test", "Approver");
        var cut = RenderWithAuth<ApprovalDetailView>(p => p
            .Add(c => c.Detail, Detail(Request(), baseYaml: null))
            .Add(c => c.User, Principal("approver9@portal.test", "Approver"))
            .Add(c => c.Now, Now));
        Assert.NotNull(cut.Find("[data-testid=no-diff-base]"));
        Assert.Contains("id: deploy", cut.Find("pre.rbp-yaml").TextContent);
    }

    [Theory]
    [InlineData("op@portal.test", "Approver", "You requested this run")]
    [InlineData("approver0@portal.test", "Approver", "You approved this run")]
    [InlineData("someone@portal.test", "Operator", "Only people with the Approver role")]
    [InlineData("admin@portal.test", "Admin", "Only people with the Approver role")]
    public void Detail_OffersNoDecision_ToTheRequester_ToWhoeverApprovedAlready_OrWithoutTheRole(string who, string role, string why)
    {
        SignInAs(who, role);
        var cut = RenderWithAuth<ApprovalDetailView>(p => p
            .Add(c => c.Detail, Detail(Request()))
            .Add(c => c.User, Principal(who, role))
            .Add(c => c.Now, Now));
        Assert.Empty(cut.FindAll("[data-testid=approve]"));
        Assert.Contains(why, cut.Find("[data-testid=cannot-decide]").TextContent);
    }

    [Fact]
    public void Detail_OfARejectedRequest_SaysWhoRejectedItAndWhy()
    {
        SignInAs("approver9@portal.test", "Approver");
        var rejected = Request(ApprovalStatus.Rejected, approvals: 0, rejection: new ApprovalDecisionView("approver1@portal.test", Now, "wrong build"));
        var cut = RenderWithAuth<ApprovalDetailView>(p => p
            .Add(c => c.Detail, Detail(rejected))
            .Add(c => c.User, Principal("approver9@portal.test", "Approver"))
            .Add(c => c.Now, Now));
        Assert.Contains("Rejected by approver1@portal.test: wrong build", cut.Find("[data-testid=approval-why]").TextContent);
        Assert.Empty(cut.FindAll("[data-testid=approve]"));
    }

    private static System.Security.Claims.ClaimsPrincipal Principal(string email, params string[] roles) =>
        new(new System.Security.Claims.ClaimsIdentity(
            [new(System.Security.Claims.ClaimTypes.Email, email), .. roles.Select(r => new System.Security.Claims.Claim(System.Security.Claims.ClaimTypes.Role, r))], "test"));
}
