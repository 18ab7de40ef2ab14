using RunbookPortal.Web.Tests.Infrastructure;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RunbookPortal.E2E;

/// <summary>
/// Issue 14: two portal processes on one real PostgreSQL. A run executes on node A; its execution page, open on node B
/// (which runs nothing of it and reads nothing on a timer: its event sweep is once a day), shows every line and every
/// step transition as node A records them, once each, without a reload. Only node A's notifications (the
/// LISTEN/NOTIFY bridge) can tell node B.
/// </summary>
[Collection(BrowserCollection.Name)]
public sealed class CrossNodeTests(PortalProcess portal, ITestOutputHelper output) : BrowserTest(portal, output)
{
    private const int FirstHalf = 20;
    private const int Lines = 40;

    [Fact]
    public async Task TheExecutionPageOnNodeB_FollowsARunExecutingOnNodeA_Live()
    {
        await using var database = await PostgresDatabase.CreateAsync();
        var password = "Cross-" + RandomNumberGenerator.GetHexString(12) + "!";
        var token = "rbp_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(24));
        var gate1 = $"/tmp/rbp-e2e-gate1-{Guid.NewGuid():N}";
        var gate2 = $"/tmp/rbp-e2e-gate2-{Guid.NewGuid():N}";
        var folderA = Directory.CreateTempSubdirectory("rbp-e2e-node-a-").FullName;
        var folderB = Directory.CreateTempSubdirectory("rbp-e2e-node-b-").FullName;
        await File.WriteAllTextAsync(gate1, "");
        await File.WriteAllTextAsync(gate2, "");
        PortalNodeProcess? nodeA = null, nodeB = null;
        IBrowserContext? context = null;
        try
        {
            nodeA = await PortalNodeProcess.StartAsync(new Dictionary<string, string>
            {
                ["Database:Provider"] = "Postgres",
                ["ConnectionStrings:Postgres"] = database.ConnectionString,
                ["Database:DataDirectory"] = folderA,
                ["Bootstrap:AdminEmail"] = PortalProcess.AdminEmail,
                ["Bootstrap:AdminPassword"] = password,
                ["Bootstrap:ApiToken"] = token,
                ["Engine:NodeId"] = "node-a",
            });
            using var admin = new HttpClient { BaseAddress = nodeA.BaseAddress, Timeout = TimeSpan.FromSeconds(30) };
            admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);

            // ---- Published on node A: the admin writes and submits it, a second author approves it.
            const string name = "e2e-cross-node";
            var yaml = $$"""
                apiVersion: runbooks/v1
                name: {{name}}
                title: Watched from another node
                type: maintenance
                steps:
                  - id: count
                    name: Count
                    action: shell
                    run: |
                      while [ -e {{gate1}} ]; do sleep 0.05; done
                      for i in $(seq 1 {{FirstHalf}}); do echo "line $i"; sleep 0.05; done
                      while [ -e {{gate2}} ]; do sleep 0.05; done
                      for i in $(seq {{FirstHalf + 1}} {{Lines}}); do echo "line $i"; sleep 0.05; done
                  - id: after
                    name: After
                    action: shell
                    run: echo "after the count"
                """;
            var reviewer = $"reviewer-cross-{Guid.NewGuid():N}"[..24] + "@e2e.test";
            await CreateUserAsync(admin, reviewer, password, "Author");
            var reviewerToken = await CreateTokenAsync(admin, reviewer);
            using (var content = new StringContent(yaml, Encoding.UTF8, "application/yaml"))
            using (var created = await admin.PostAsync("/api/runbooks", content))
                await ExpectStatusAsync(created, HttpStatusCode.Created, "POST /api/runbooks on node A");
            using (var submitted = await admin.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { }))
                await ExpectStatusAsync(submitted, HttpStatusCode.OK, "submit v1");
            using (var approver = new HttpClient { BaseAddress = nodeA.BaseAddress })
            {
                approver.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", reviewerToken);
                using var approved = await approver.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { });
                await ExpectStatusAsync(approved, HttpStatusCode.OK, "approve v1 (second author)");
            }

            // ---- Started through node A's API; node A claims it (node B does not exist yet) and holds it at the first gate.
            string id;
            using (var started = await admin.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } }))
            {
                var body = await started.Content.ReadAsStringAsync();
                Assert.True(started.IsSuccessStatusCode, $"starting {name} on node A answered {(int)started.StatusCode}: {body}");
                id = JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
            }
            await WaitForAsync(admin, id, e => e.GetProperty("currentStepId").GetString() == "count", "node A runs the step 'count'");

            // ---- Node B: the run is A's (leased), and B reads nothing on a timer; only A's notifications can tell it.
            // Every node has the same key file: B gets a copy of A's, as an administrator would copy it.
            File.Copy(Path.Combine(folderA, "keyring.pfx"), Path.Combine(folderB, "keyring.pfx"));
            nodeB = await PortalNodeProcess.StartAsync(new Dictionary<string, string>
            {
                ["Database:Provider"] = "Postgres",
                ["ConnectionStrings:Postgres"] = database.ConnectionString,
                ["Database:DataDirectory"] = folderB,
                ["Bootstrap:AdminEmail"] = "",
                ["Bootstrap:AdminPassword"] = "",
                ["Bootstrap:ApiToken"] = "",
                ["Engine:NodeId"] = "node-b",
                ["Engine:EventSweepInterval"] = "1.00:00:00",
            });

            // ---- The execution page on node B, signed in there.
            context = await Portal.Browser.NewContextAsync(new BrowserNewContextOptions
            {
                BaseURL = nodeB.BaseAddress.ToString(),
                ViewportSize = new ViewportSize { Width = 1366, Height = 900 },
                Locale = "en-US",
                TimezoneId = "UTC",
            });
            context.SetDefaultTimeout(30_000);
            var page = await context.NewPageAsync();
            page.Console += (_, m) => { if (m.Type is "error" or "warning") Output.WriteLine($"node B page console {m.Type}: {m.Text}"); };
            page.PageError += (_, e) => Output.WriteLine($"node B page error: {e}");
            await page.GotoAsync("/account/login");
            await SubmitSignInAsync(PortalProcess.AdminEmail, password, page);
            await Expect(page, "signing in on node B opens its dashboard").ToHaveURLAsync(nodeB.BaseAddress.ToString());
            await Expect(page.Locator("h1").Filter(new() { HasText = "Welcome" }), "the circuit on node B is interactive")
                .ToBeFocusedAsync(new() { Timeout = 30_000 }); // a node just started: its first circuit is slow
            // In the same circuit (no reload): the page is interactive from its first render.
            await page.EvaluateAsync("url => Blazor.navigateTo(url)", $"/executions/{id}");
            var h1 = page.Locator("h1").Filter(new() { HasText = $"{name} v1" });
            await Expect(h1).ToBeVisibleAsync();
            await page.EvaluateAsync("() => { window.__rbpE2eDocument = true; }");

            var status = page.Locator("h1").Locator("xpath=..").Locator("[data-status]");
            var steps = page.Locator("[data-testid=steps] > [data-step]");
            var log = page.Locator("[data-testid=log-lines]");
            var output = log.Locator(".rbp-log-line .rbp-output");
            await Expect(status).ToHaveAttributeAsync("data-status", "Running");
            await Expect(steps.Nth(0)).ToHaveAttributeAsync("data-status", "Running");
            await Expect(steps.Nth(1)).ToHaveAttributeAsync("data-status", "Pending");
            await Expect(output.GetByText("line 1", new() { Exact = true }), "nothing is printed before the first gate opens").ToHaveCountAsync(0);

            // ---- The first half is printed on node A, one line every 50 ms: node B's page shows it as it comes.
            File.Delete(gate1);
            await Expect(output.GetByText("line 1", new() { Exact = true }), "the first line printed on node A appears on node B").ToBeVisibleAsync();
            await Expect(log, "every line of the first half, once each").ToHaveAttributeAsync("data-count", FirstHalf.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await Expect(output.GetByText($"line {FirstHalf}", new() { Exact = true })).ToBeVisibleAsync();
            await Expect(steps.Nth(0), "the step still runs (held at the second gate)").ToHaveAttributeAsync("data-status", "Running");
            await Expect(status).ToHaveAttributeAsync("data-status", "Running");
            await ScreenshotAsync("cross-node-b-running.png", page);

            // ---- The rest, the step's end, the next step and the run's end, all without a reload.
            File.Delete(gate2);
            await Expect(output.GetByText($"line {Lines}", new() { Exact = true }), "the last line printed on node A appears on node B").ToBeVisibleAsync();
            await Expect(steps.Nth(0), "the step's end appears").ToHaveAttributeAsync("data-status", "Succeeded");
            await Expect(output.GetByText("after the count", new() { Exact = true }), "the second step's output appears").ToBeVisibleAsync();
            await Expect(steps.Nth(1)).ToHaveAttributeAsync("data-status", "Succeeded");
            await Expect(status, "the run's end appears").ToHaveAttributeAsync("data-status", "Succeeded");
            await Expect(log, "every line exactly once").ToHaveAttributeAsync("data-count", (Lines + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(await page.EvaluateAsync<bool>("() => window.__rbpE2eDocument === true"), "the execution page on node B was reloaded");
            await ScreenshotAsync("cross-node-b-done.png", page);

            // ---- It ran on node A, and node B never claimed it.
            using var events = await admin.GetAsync($"/api/executions/{id}/events");
            var eventsBody = await events.Content.ReadAsStringAsync();
            Assert.True(events.IsSuccessStatusCode, $"GET events answered {(int)events.StatusCode}: {eventsBody}");
            var all = JsonDocument.Parse(eventsBody).RootElement.EnumerateArray().ToList();
            var claims = all.Where(e => e.GetProperty("kind").GetString() == "execution_claimed").Select(e => e.GetProperty("data").GetProperty("node").GetString()).ToList();
            Assert.Equal(["node-a"], claims);
            var printed = all.Where(e => e.GetProperty("kind").GetString() == "step_output" && e.GetProperty("stepId").GetString() == "count").ToList();
            Assert.Equal(Lines, printed.Count);
        }
        finally
        {
            File.Delete(gate1);
            File.Delete(gate2);
            if (context is not null)
                await context.CloseAsync();
            if (nodeB is not null)
            {
                Output.WriteLine("----- node B output -----\n" + nodeB.Log);
                await nodeB.DisposeAsync();
            }
            if (nodeA is not null)
            {
                Output.WriteLine("----- node A output -----\n" + nodeA.Log);
                await nodeA.DisposeAsync();
            }
            foreach (var folder in new[] { folderA, folderB })
                try { Directory.Delete(folder, recursive: true); } catch (IOException) { }
        }
    }

    private static async Task WaitForAsync(HttpClient api, string id, Func<JsonElement, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var response = await api.GetAsync($"/api/executions/{id}");
            var body = await response.Content.ReadAsStringAsync();
            if (response.IsSuccessStatusCode && condition(JsonDocument.Parse(body).RootElement))
                return;
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"{what}: not within 30 s; last answer {(int)response.StatusCode}: {body}");
            await Task.Delay(100); // polling the API for a condition, not a pause for timing
        }
    }
}
