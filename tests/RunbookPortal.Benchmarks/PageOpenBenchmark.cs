using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Playwright;

namespace RunbookPortal.Benchmarks;

/// <summary>
/// Opening the execution page of a finished run with 100,000 lines of output, in a real Chromium, from a real portal
/// process on a real database: from the navigation to the last line painted in the log (the page opens at its tail).
/// Baseline, in the same run: the page of a finished run with 100 lines. Median and p90 of the rounds (default 9).
/// </summary>
public static class PageOpenBenchmark
{
    public static int Run(string[] args) => RunAsync(args).GetAwaiter().GetResult();

    private static async Task<int> RunAsync(string[] args)
    {
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        var rounds = args.Select(a => int.TryParse(a, out var n) ? n : 0).FirstOrDefault(n => n > 0) is > 0 and var r ? r : 9;
        var postgres = args.Contains("postgres");
        var chromium = Environment.GetEnvironmentVariable("RBP_CHROMIUM") is { Length: > 0 } path ? path : "/usr/bin/chromium";
        if (!File.Exists(chromium))
            throw new InvalidOperationException($"Chromium was not found at {chromium}: set RBP_CHROMIUM, or run tests/scripts/test.sh once (it installs it).");

        await using var store = await BenchStore.CreateAsync(postgres);
        await using var portal = await BenchPortal.StartAsync(store, new Dictionary<string, string> { ["Engine:MaxOutputBytesPerStep"] = "16777216" });
        var big = await FinishedRunAsync(portal, "bench-open-100k", 100_000);
        var small = await FinishedRunAsync(portal, "bench-open-100", 100);

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = chromium, Headless = true, Args = ["--no-sandbox", "--disable-gpu", "--no-first-run"] });
        var context = await browser.NewContextAsync(new() { BaseURL = portal.Process.BaseAddress.ToString(), ViewportSize = new() { Width = 1440, Height = 900 } });
        var page = await context.NewPageAsync();
        await page.GotoAsync("/account/login");
        await page.Locator("#login-email").FillAsync("admin@bench.test");
        await page.Locator("#login-password").FillAsync("benchmark admin password");
        await page.Locator("[data-testid=sign-in]").ClickAsync();
        await page.WaitForURLAsync(portal.Process.BaseAddress.ToString());

        async Task<TimeSpan> OpenAsync(Guid id, int lines)
        {
            await page.GotoAsync("about:blank");
            var clock = Stopwatch.StartNew();
            await page.GotoAsync($"/executions/{id}", new() { WaitUntil = WaitUntilState.Commit });
            await page.Locator("[data-testid=log-lines] .rbp-log-line .rbp-output").GetByText(lines.ToString(CultureInfo.InvariantCulture), new() { Exact = true })
                .WaitForAsync(new() { State = WaitForSelectorState.Visible, Timeout = 60_000 });
            return clock.Elapsed;
        }

        await OpenAsync(small, 100); // warm-up: the first page of a session loads the scripts
        await OpenAsync(big, 100_000);
        var smalls = new List<double>();
        var bigs = new List<double>();
        for (var i = 0; i < rounds; i++)
        {
            smalls.Add((await OpenAsync(small, 100)).TotalMilliseconds);
            bigs.Add((await OpenAsync(big, 100_000)).TotalMilliseconds);
        }
        smalls.Sort();
        bigs.Sort();
        Console.WriteLine($"Opening a finished run's execution page in Chromium until its last line is painted ({(postgres ? "PostgreSQL" : "SQLite")}, real portal process, {rounds} rounds)");
        Console.WriteLine($"  {"lines",8} {"median",10} {"p90",10}");
        Console.WriteLine($"  {100,8} {Median(smalls),7:0} ms {P90(smalls),7:0} ms");
        Console.WriteLine($"  {100_000,8} {Median(bigs),7:0} ms {P90(bigs),7:0} ms   ({Median(bigs) / Median(smalls):0.00}× the 100-line page)");
        var met = Median(bigs) < 1000;
        Console.WriteLine($"  goal < 1 s to the tail of 100,000 lines: {(met ? "met" : "NOT met")}");
        return met ? 0 : 1;
    }

    private static double Median(List<double> sorted) => sorted[sorted.Count / 2];

    private static double P90(List<double> sorted) => sorted[Math.Clamp((int)Math.Ceiling(0.9 * sorted.Count) - 1, 0, sorted.Count - 1)];

    private static async Task<Guid> FinishedRunAsync(BenchPortal portal, string name, int lines)
    {
        await portal.PublishAsync(name, $"""
            apiVersion: runbooks/v1
            name: {name}
            title: Benchmark {name}
            type: maintenance
            steps:
              - id: count
                action: shell
                timeout: 10m
                run: seq 1 {lines}
            """);
        var response = await portal.Api.PostAsJsonAsync($"/api/runbooks/{name}/executions", new { parameters = new { } });
        response.EnsureSuccessStatusCode();
        var id = (await response.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("id").GetGuid();
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = (await portal.Api.GetFromJsonAsync<JsonElement>($"/api/executions/{id}")).GetProperty("status").GetString();
            if (status == "Succeeded")
                return id;
            if (status is not ("Queued" or "Running") || clock.Elapsed > TimeSpan.FromMinutes(5))
                throw new InvalidOperationException($"Execution {id} of {name} is {status} after {clock.Elapsed}.");
            await Task.Delay(250);
        }
    }
}
