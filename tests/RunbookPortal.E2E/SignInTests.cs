using System.Text.Json;
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
    public async Task SignOut_FromTheAccountMenu_EndsOnSignIn()
    {
        await SignInAsAdminAsync();

        await SignOutAsync();

        await Page.GotoAsync("/");
        await Expect(Page, "once signed out the dashboard asks to sign in again").ToHaveURLAsync(LoginUrl);
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
        await Expect(Page.Locator("[data-testid=tokens-table]"), "the bootstrap token, shown by its name and id, none of its text").ToContainTextAsync("bootstrap");
        await ScreenshotAsync("my-tokens.png");

        await Page.GotoAsync("/audit");
        await WaitForInteractiveAsync("Audit trail");
        await Expect(Page.Locator("[data-testid=audit-table]")).ToContainTextAsync("auth.signin");
        await Page.Locator("[data-testid=verify-chain]").ClickAsync();
        await Expect(Page.Locator("[data-testid=verify-result]")).ToContainTextAsync("The chain is intact");
        await ScreenshotAsync("audit.png");

        await Page.GotoAsync("/executions");
        await WaitForInteractiveAsync("Executions");
        // Empty or not depending on which tests of the collection ran first (ExecutionTests starts a run).
        await Expect(Page.Locator("[data-testid=executions-table]")).ToBeVisibleAsync();
        await ScreenshotAsync("executions-list.png");

        // The catalog is empty unless another test of this collection (they share one portal, in no fixed order)
        // has created a runbook already; the empty state is asserted, and screenshot, only when it is empty.
        var catalogEmpty = await CatalogIsEmptyAsync();
        await Page.GotoAsync("/runbooks");
        await WaitForInteractiveAsync("Runbooks");
        if (catalogEmpty)
        {
            await Expect(Page.Locator("[data-testid=catalog-empty]")).ToContainTextAsync("No runbooks yet");
            await ScreenshotAsync("catalog-empty.png");
        }
        else
        {
            await Expect(Page.Locator("[data-testid=catalog-list]")).ToBeVisibleAsync();
            await ScreenshotAsync("catalog.png");
        }
    }

    private async Task<bool> CatalogIsEmptyAsync()
    {
        using var api = Api(Portal.ApiToken);
        using var response = await api.GetAsync("/api/runbooks?pageSize=1");
        response.EnsureSuccessStatusCode();
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        return json.RootElement.GetProperty("total").GetInt32() == 0;
    }
}
