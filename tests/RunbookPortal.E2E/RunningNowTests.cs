using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RunbookPortal.E2E;

/// <summary>
/// An on-call engineer keeps the dashboard open: a run started through the API (as a pipeline would) appears under
/// Running now at its current step with a ticking time, without a reload; when it fails it leaves that list and appears
/// under the failures of the last 24 hours with its failed step. The Running now page shows the same.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class RunningNowTests(PortalProcess portal, ITestOutputHelper output) : BrowserTest(portal, output)
{
    [Fact]
    public async Task TheDashboardsRunningNow_ShowsARunWhenItStarts_AndUnderFailuresWhenItFails_WithoutReloading()
    {
        var suffix = Guid.NewGuid().ToString("N")[..8];
        var name = $"e2e-running-{suffix}";
        var go = $"/tmp/rbp-e2e-running-{suffix}";
        using var admin = Api(Portal.ApiToken);
        var (email, password, token) = await OperatorAndPublishedRunbookAsync(admin, name, $$"""
            apiVersion: runbooks/v1
            name: {{name}}
            title: Running now
            type: deployment
            steps:
              - id: signal
                name: Wait for the signal
                action: shell
                run: while [ ! -e {{go}} ]; do sleep 0.1; done; echo "signalled"
              - id: migrate
                name: Migrate the database
                action: shell
                run: echo "lock held" >&2; exit 3
            """, suffix);

        await SignInAsync(email, password);
        var board = Page.Locator("[data-testid=running-now]");
        await Expect(board).ToBeVisibleAsync();
        await Page.EvaluateAsync("() => { window.__rbpE2eDocument = true; }");

        var id = await StartByApiAsync(token, name);
        try
        {
            var row = Page.Locator($"[data-testid=running-table] tbody tr:has([data-execution='{id}'])");
            await Expect(row, "the run appears under Running now without a reload").ToBeVisibleAsync();
            await Expect(row.Locator("[data-status]")).ToHaveAttributeAsync("data-status", "Running");
            await Expect(row.Locator("[data-testid=running-step]")).ToHaveTextAsync("Wait for the signal");
            await Expect(row.Locator("a").First).ToHaveAttributeAsync("href", $"/executions/{id}");
            var elapsed = row.Locator("[data-testid=running-elapsed]");
            var first = await elapsed.TextContentAsync();
            await Expect(elapsed, "the elapsed time ticks").Not.ToHaveTextAsync(first!);
            await ScreenshotAsync("running-now-dashboard.png");
            await ExpectAccessibleAsync(Page, "the dashboard with a run in progress");
            await OnAPhoneAsync(Page, "running-now-dashboard-phone.png", "the dashboard with a run in progress on a phone");

            await File.WriteAllTextAsync(go, "go");
            await Expect(row, "the failed run leaves Running now").ToHaveCountAsync(0, new() { Timeout = 20_000 });
            var failure = Page.Locator($"[data-testid=failures-table] tbody tr:has([data-execution='{id}'])");
            await Expect(failure, "and appears under the failures").ToBeVisibleAsync();
            await Expect(failure.Locator("[data-testid=failure-step]")).ToHaveTextAsync("Migrate the database");
            await Expect(failure.Locator("[data-status]")).ToHaveAttributeAsync("data-status", "Failed");
        }
        finally
        {
            File.Delete(go);
        }
        Assert.True(await Page.EvaluateAsync<bool>("() => window.__rbpE2eDocument === true"), "the dashboard was reloaded");
        await ScreenshotAsync("running-now-dashboard-failed.png");

        await Page.Locator("[data-testid=nav-running]").First.ClickAsync();
        await WaitForInteractiveAsync("Running now");
        await Expect(Page.Locator($"[data-testid=failures-table] tbody tr:has([data-execution='{id}'])")).ToBeVisibleAsync();
        await ScreenshotAsync("running-now-page.png");
        await ExpectAccessibleAsync(Page, "the Running now page");
        await OnAPhoneAsync(Page, "running-now-page-phone.png", "the Running now page on a phone");
    }

    /// <summary>An operator (with an API token) and the runbook <paramref name="yaml"/> published: created and submitted by the admin, approved by a second author.</summary>
    private async Task<(string Email, string Password, string Token)> OperatorAndPublishedRunbookAsync(HttpClient admin, string name, string yaml, string suffix)
    {
        var email = $"oncall-{suffix}@e2e.test";
        var password = "Oncall-" + suffix + "!";
        var reviewerEmail = $"reviewer-oncall-{suffix}@e2e.test";
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
