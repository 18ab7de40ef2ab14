using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RunbookPortal.E2E;

[Collection(BrowserCollection.Name)]
public sealed class SignInTests(PortalProcess portal, ITestOutputHelper output) : BrowserTest(portal, output)
{
    [Fact]
    public async Task BootstrapAdmin_SignsIn_AndLandsOnDashboard()
    {
        await SignInAsAdminAsync();

        await Expect(Page.Locator("h1")).ToHaveTextAsync($"Welcome, {PortalProcess.AdminEmail}");
        await ScreenshotAsync("dashboard.png");
    }

    [Fact]
    public async Task WrongPassword_ShowsError_AndStaysOnSignIn()
    {
        await Page.GotoAsync("/account/login");

        await SubmitSignInAsync(PortalProcess.AdminEmail, Portal.AdminPassword + "-wrong");

        await Expect(Page.Locator("[data-testid=login-error]")).ToContainTextAsync("Invalid email or password");
        await Expect(Page).ToHaveURLAsync(LoginUrl);
        await Expect(Page.Locator("#login-password")).ToHaveValueAsync("");
        await ScreenshotAsync("login-error.png");
    }

    [Fact]
    public async Task AdminPages_Render()
    {
        await SignInAsAdminAsync();

        await Page.GotoAsync("/admin/users");
        await WaitForInteractiveAsync("Users");
        await Expect(Page.Locator("[data-testid=users-table]")).ToContainTextAsync(PortalProcess.AdminEmail);
        await ScreenshotAsync("users.png");

        await Page.GotoAsync("/admin/tokens");
        await WaitForInteractiveAsync("API tokens");
        await Expect(Page.Locator("[data-testid=tokens-table]")).ToContainTextAsync(PortalProcess.AdminEmail);
        await ScreenshotAsync("admin-tokens.png");

        await Page.GotoAsync("/account/tokens");
        await WaitForInteractiveAsync("My API tokens");
        await Expect(Page.Locator("[data-testid=tokens-table]")).ToContainTextAsync("rbp_");
        await ScreenshotAsync("my-tokens.png");

        await Page.GotoAsync("/audit");
        await WaitForInteractiveAsync("Audit trail");
        await Expect(Page.Locator("[data-testid=audit-table]")).ToContainTextAsync("auth.signin");
        await Page.Locator("[data-testid=verify-chain]").ClickAsync();
        await Expect(Page.Locator("[data-testid=verify-result]")).ToContainTextAsync("The chain is intact");
        await ScreenshotAsync("audit.png");

        await Page.GotoAsync("/runbooks");
        await WaitForInteractiveAsync("Runbooks");
        await Expect(Page.Locator("[data-testid=placeholder]")).ToBeVisibleAsync();
        await ScreenshotAsync("runbooks-placeholder.png");
    }
}
