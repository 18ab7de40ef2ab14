using Bunit;
using Microsoft.Extensions.DependencyInjection;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Components;

/// <summary>The sign-in form, rendered by bUnit on the portal's real services (Identity over a real SQLite database).</summary>
public sealed class LoginFormTests : PortalBunitContext, IClassFixture<SqlitePortalFixture>
{
    public LoginFormTests(SqlitePortalFixture fixture)
    {
        var scope = fixture.Portal.Services.CreateAsyncScope();
        Services.AddFallbackServiceProvider(scope.ServiceProvider);
    }

    [Fact]
    public void Form_HasLabelledEmailAndPasswordFields_AndASubmitButton()
    {
        var cut = Render<LoginPage>();

        Assert.Equal("Email", cut.Find("label[for=login-email]").TextContent);
        Assert.Equal("email", cut.Find("#login-email").GetAttribute("type"));
        Assert.Equal("Password", cut.Find("label[for=login-password]").TextContent);
        Assert.Equal("password", cut.Find("#login-password").GetAttribute("type"));
        Assert.Equal("current-password", cut.Find("#login-password").GetAttribute("autocomplete"));
        Assert.Equal("Sign in", cut.Find("[data-testid=sign-in]").TextContent.Trim());
        Assert.Empty(cut.FindAll("[data-testid=login-error]"));
    }

    [Fact]
    public void EmptySubmit_ShowsAMessageForEachField()
    {
        var cut = Render<LoginPage>();

        cut.Find("form").Submit();

        var messages = cut.FindAll(".rbp-field-error").Select(e => e.TextContent).ToList();
        Assert.Contains("Enter your email address.", messages);
        Assert.Contains("Enter your password.", messages);
    }

    [Fact]
    public void WrongPassword_ShowsOneErrorThatRevealsNothing_AndClearsThePassword()
    {
        var cut = Render<LoginPage>();

        cut.Find("#login-email").Change(PortalFactory.AdminEmail);
        cut.Find("#login-password").Change("definitely not it");
        cut.Find("form").Submit();

        cut.WaitForAssertion(() => Assert.Equal("Invalid email or password, or the account is disabled.", cut.Find("[data-testid=login-error]").TextContent.Trim()));
        Assert.Equal("", cut.Find("#login-password").GetAttribute("value") ?? "");
    }

    [Theory]
    [InlineData("/executions?x=1", "/executions?x=1")]
    [InlineData("https://evil.example/", "/")]
    [InlineData("//evil.example/", "/")]
    [InlineData("/\\evil.example/", "/")]
    [InlineData(null, "/")]
    [InlineData("/runbooks/déploiement?q=é", "/runbooks/d%C3%A9ploiement?q=%C3%A9")]
    [InlineData("/runbooks/🚀", "/runbooks/%F0%9F%9A%80")]
    [InlineData("/runbooks/x\r\nSet-Cookie: a=b", "/")]
    public void ReturnUrl_StaysOnThisSite(string? requested, string expected) =>
        Assert.Equal(expected, LoginPage.SafeReturnUrl(requested));
}
