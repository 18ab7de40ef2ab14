using Bunit;
using Microsoft.AspNetCore.Components;
using RunbookPortal.Web.Components.Layout;

namespace RunbookPortal.Web.Tests.Components;

public sealed class LayoutTests : PortalBunitContext
{
    private static string[] LinkTexts(IRenderedComponent<Microsoft.AspNetCore.Components.Authorization.CascadingAuthenticationState> cut) =>
        cut.FindAll("a.mud-nav-link").Select(a => a.TextContent.Trim()).ToArray();

    [Fact]
    public void Navigation_ForAnOperator_ShowsTheWorkAreas_ButNotAuditOrAdmin()
    {
        SignInAs("op@portal.test", "Operator");
        var cut = RenderWithAuth<NavMenu>();

        Assert.Equal(["Dashboard", "Runbooks", "Executions", "Approvals"], LinkTexts(cut));
    }

    [Fact]
    public void Navigation_ForAnAuditor_AddsAudit()
    {
        SignInAs("aud@portal.test", "Auditor");
        var cut = RenderWithAuth<NavMenu>();

        Assert.Equal(["Dashboard", "Runbooks", "Executions", "Approvals", "Audit"], LinkTexts(cut));
    }

    [Fact]
    public void Navigation_ForAnAdmin_ShowsAuditAndTheAdminGroup()
    {
        SignInAs("admin@portal.test", "Admin");
        var cut = RenderWithAuth<NavMenu>();

        Assert.Equal(["Dashboard", "Runbooks", "Executions", "Approvals", "Audit", "Users", "API tokens"], LinkTexts(cut));
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
