using Microsoft.Playwright;
namespace RunbookPortal.E2E;

[Collection(BrowserCollection.Name)]
public sealed class ScratchTests(PortalProcess portal)
{
    [Fact]
    public async Task Explore()
    {
        var context = await portal.Browser.NewContextAsync(new() { BaseURL = portal.BaseUrl.ToString(), ViewportSize = new() { Width = 1366, Height = 900 } });
        var page = await context.NewPageAsync();
        var lines = new List<string>();
        page.Console += (_, m) => lines.Add($"console {m.Type}: {m.Text}");
        page.WebSocket += (_, ws) => { lines.Add($"ws {ws.Url}"); ws.FrameReceived += (_, f) => lines.Add($"ws recv {f.Text?.Length} {(f.Text ?? "").Substring(0, Math.Min(60, (f.Text ?? "").Length))}"); };
        await page.GotoAsync("/account/login");
        await File.WriteAllTextAsync("/tmp/e2e-scratch/login.html", await page.ContentAsync());
        await page.FillAsync("#login-email", PortalProcess.AdminEmail);
        await page.FillAsync("#login-password", portal.AdminPassword);
        await page.ClickAsync("[data-testid=sign-in]");
        await page.WaitForURLAsync(portal.BaseUrl.ToString());
        var html0 = await page.EvaluateAsync<string>("document.documentElement.outerHTML");
        await File.WriteAllTextAsync("/tmp/e2e-scratch/home0.html", html0);
        await page.WaitForTimeoutAsync(3000);
        var html1 = await page.EvaluateAsync<string>("document.documentElement.outerHTML");
        await File.WriteAllTextAsync("/tmp/e2e-scratch/home1.html", html1);
        lines.Add("active: " + await page.EvaluateAsync<string>("document.activeElement.outerHTML.substring(0,200)"));
        await File.WriteAllLinesAsync("/tmp/e2e-scratch/events.txt", lines);
        await File.WriteAllTextAsync("/tmp/e2e-scratch/app.log", portal.Log);
    }
}
