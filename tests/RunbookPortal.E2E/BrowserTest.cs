using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text;
using System.Text.RegularExpressions;
using Deque.AxeCore.Commons;
using Deque.AxeCore.Playwright;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace RunbookPortal.E2E;

/// <summary>
/// One fresh browser context and page per test, against the shared portal. What the browser saw go wrong
/// (console errors, page errors, failed requests) and what the portal logged during the test go to the
/// test output, which the runner prints for a failed test.
/// </summary>
public abstract class BrowserTest(PortalProcess portal, ITestOutputHelper output) : IAsyncLifetime
{
    private readonly List<string> _problems = [];
    private readonly List<string> _breakages = [];
    private readonly Lock _problemsLock = new();
    private int _logStart;
    private IBrowserContext? _context;
    private IPage? _page;

    protected PortalProcess Portal { get; } = portal;
    protected ITestOutputHelper Output { get; } = output;
    protected IPage Page => _page ?? throw new InvalidOperationException("The page is not open yet.");

    protected static readonly Regex LoginUrl = new(@"/account/login(\?|$)");

    public async Task InitializeAsync()
    {
        _logStart = Portal.Log.Length;
        await OpenContextAsync();
    }

    /// <summary>
    /// Closes the browser context (cookies, storage, page) and opens a fresh one: a new visitor, signed out.
    /// </summary>
    protected async Task NewBrowserSessionAsync()
    {
        if (_context is not null)
            await _context.CloseAsync();
        _context = null;
        _page = null;
        await OpenContextAsync();
    }

    private async Task OpenContextAsync()
    {
        _context = await Portal.Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = Portal.BaseUrl.ToString(),
            ViewportSize = new ViewportSize { Width = 1366, Height = 900 },
            Locale = "en-US",
            TimezoneId = "UTC",
        });
        _context.SetDefaultTimeout(30_000);
        _page = await _context.NewPageAsync();
        _page.Console += (_, m) =>
        {
            if (m.Type is "error" or "warning")
                Problem($"console {m.Type}: {m.Text} ({m.Location})");
        };
        _page.PageError += (_, e) => Problem($"page error: {e}", breaks: true);
        _page.RequestFailed += (_, r) => Problem($"request failed: {r.Method} {r.Url}: {r.Failure}", breaks: IsPageAsset(r));
        _page.Response += (_, r) =>
        {
            if (r.Status >= 400)
                Problem($"HTTP {r.Status}: {r.Request.Method} {r.Url}", breaks: IsPageAsset(r.Request));
            else if (IsPageAsset(r.Request) && r.Headers.TryGetValue("content-length", out var length) && length == "0")
                Problem($"empty {r.Request.ResourceType}: HTTP {r.Status} with no content for {r.Url}", breaks: true);
        };
    }

    public async Task DisposeAsync()
    {
        if (_context is not null)
            await _context.CloseAsync();

        var report = new StringBuilder();
        lock (_problemsLock)
        {
            report.AppendLine(_problems.Count == 0 ? "The browser reported no problem." : "What the browser reported:");
            foreach (var p in _problems)
                report.Append("  ").AppendLine(p);
        }
        var log = Portal.Log;
        report.AppendLine("----- portal output during this test -----")
            .AppendLine(log[Math.Min(_logStart, log.Length)..])
            .Append("----- end of portal output -----");
        Output.WriteLine(report.ToString());

        // A page without its scripts or styles, or with an uncaught script error, is broken even when the assertions held.
        lock (_problemsLock)
        {
            if (_breakages.Count > 0)
                throw new InvalidOperationException("The page was broken:\n  " + string.Join("\n  ", _breakages.Distinct()));
        }
    }

    /// <summary>Fills and submits the sign-in form of the page that is open.</summary>
    protected async Task SubmitSignInAsync(string email, string password, IPage? page = null)
    {
        page ??= Page;
        await page.Locator("#login-email").FillAsync(email);
        await page.Locator("#login-password").FillAsync(password);
        await page.Locator("[data-testid=sign-in]").ClickAsync();
    }

    /// <summary>
    /// Opens the dashboard as a signed-out visitor, is sent to the sign-in page, signs in as the bootstrap
    /// administrator and waits until the dashboard is back and interactive.
    /// </summary>
    protected async Task SignInAsAdminAsync()
    {
        await Page.GotoAsync("/");
        await Expect(Page, "a signed-out visitor is sent to the sign-in page").ToHaveURLAsync(LoginUrl);
        await SubmitSignInAsync(PortalProcess.AdminEmail, Portal.AdminPassword);
        await Expect(Page, "after signing in the dashboard opens").ToHaveURLAsync(Portal.BaseUrl.ToString());
        await Expect(Page.GetByText("What to do next")).ToBeVisibleAsync();
        await Expect(Page.Locator("[data-testid=next-steps]")).ToBeAttachedAsync();
        await WaitForInteractiveAsync("Welcome");
    }

    /// <summary>
    /// Signs in as <paramref name="email"/> on the sign-in page and waits until the dashboard is back and interactive.
    /// </summary>
    protected async Task SignInAsync(string email, string password)
    {
        await Page.GotoAsync("/account/login");
        await SubmitSignInAsync(email, password);
        await Expect(Page, $"after signing in as {email} the dashboard opens").ToHaveURLAsync(Portal.BaseUrl.ToString());
        await WaitForInteractiveAsync($"Welcome, {email}");
    }

    /// <summary>Signs out through the account menu of the app bar and waits for the sign-in page.</summary>
    protected async Task SignOutAsync()
    {
        await Page.Locator("[data-testid=user-menu]").ClickAsync();
        await Expect(Page.Locator("[data-testid=user-menu] [aria-haspopup=menu]"), "a click on the account chip opens the account menu")
            .ToHaveAttributeAsync("aria-expanded", "true", new() { Timeout = 5_000 });
        await Page.Locator("[data-testid=sign-out]").ClickAsync();
        await Expect(Page, "signing out ends on the sign-in page").ToHaveURLAsync(new Regex(@"/account/login\?signedOut=1$"));
    }

    /// <summary>An HTTP client for the portal's REST API, authenticated with an API token (<c>Authorization: Bearer</c>).</summary>
    protected HttpClient Api(string token)
    {
        var client = new HttpClient { BaseAddress = Portal.BaseUrl, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    /// <summary>
    /// Waits for the page's h1 (containing <paramref name="heading"/>) and for the Blazor circuit to be interactive.
    /// A prerendered page looks the same as a live one but ignores clicks; the interactive router's
    /// FocusOnNavigate moves the focus to the h1 only once the circuit has rendered, so a focused h1 is the signal.
    /// </summary>
    protected async Task WaitForInteractiveAsync(string heading)
    {
        var h1 = Page.Locator("h1").Filter(new() { HasText = heading });
        await Expect(h1, $"the page shows the heading \"{heading}\"").ToBeVisibleAsync();
        await Expect(h1, "the Blazor circuit becomes interactive (FocusOnNavigate focuses the h1; it never does when blazor.web.js is not loaded or the circuit fails)")
            .ToBeFocusedAsync();
    }

    /// <summary>Saves a full-page screenshot of <paramref name="page"/> (default: this test's page) as tests/RunbookPortal.E2E/screenshots/{name}.</summary>
    protected async Task ScreenshotAsync(string name, IPage? page = null)
    {
        page ??= Page;
        // Let finite animations end first (a snackbar fading in, the tab slider moving, a ripple), so the picture shows
        // the settled page; endless ones (an indeterminate progress bar, a blinking cursor) are not waited for.
        await page.WaitForFunctionAsync(
            "() => document.getAnimations().every(a => a.playState !== 'running' || !Number.isFinite(a.effect?.getComputedTiming().endTime ?? Infinity))");
        var path = Path.Combine(Portal.ScreenshotDirectory, name);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = path, FullPage = true });
        Output.WriteLine($"Screenshot: {path}");
    }

    protected static async Task ExpectStatusAsync(HttpResponseMessage response, HttpStatusCode expected, string what) =>
        Assert.True(response.StatusCode == expected,
            $"{what} answered {(int)response.StatusCode}, expected {(int)expected}: {await response.Content.ReadAsStringAsync()}");

    protected static async Task CreateUserAsync(HttpClient admin, string email, string password, params string[] roles)
    {
        using var response = await admin.PostAsJsonAsync("/api/admin/users", new { email, password, roles });
        await ExpectStatusAsync(response, HttpStatusCode.Created, $"POST /api/admin/users for {email}");
    }

    protected static async Task<string> CreateTokenAsync(HttpClient admin, string email)
    {
        using var response = await admin.PostAsJsonAsync($"/api/admin/users/{Uri.EscapeDataString(email)}/tokens", new { name = "e2e" });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST /api/admin/users/{email}/tokens answered {(int)response.StatusCode}: {body}");
        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("token").GetString()!;
    }

    private static bool IsPageAsset(IRequest request) => request.ResourceType is "script" or "stylesheet";

    private void Problem(string text, bool breaks = false)
    {
        lock (_problemsLock)
        {
            _problems.Add(text);
            if (breaks)
                _breakages.Add(text);
        }
    }

    /// <summary>The same page 390 px wide: a screenshot, axe-core, no sideways scrolling of the page, and (with <paramref name="tablesFit"/>) no table wider than the screen; then back to the desktop size.</summary>
    protected async Task OnAPhoneAsync(IPage page, string screenshot, string what, bool tablesFit = true)
    {
        await page.SetViewportSizeAsync(390, 844);
        await ScreenshotAsync(screenshot, page);
        await ExpectAccessibleAsync(page, what);
        var width = await page.EvaluateAsync<int>("() => document.documentElement.scrollWidth");
        Assert.True(width <= 390, $"{what} is {width} px wide on a 390 px screen");
        var clipped = await page.EvaluateAsync<int>("() => [...document.querySelectorAll('.mud-main-content .mud-table-container')].filter(e => e.scrollWidth > e.clientWidth + 1).length");
        Assert.True(!tablesFit || clipped == 0, $"{what} has a table wider than the screen");
        await page.SetViewportSizeAsync(1366, 900);
    }

    /// <summary>axe-core on the page's own content: no serious or critical violation.</summary>
    protected async Task ExpectAccessibleAsync(IPage page, string what)
    {
        var results = await page.RunAxe(new AxeRunContext { Include = [new AxeSelector(".mud-main-content")] });
        var bad = results.Violations.Where(v => v.Impact is "serious" or "critical").ToList();
        foreach (var v in results.Violations)
            Output.WriteLine($"axe {what}: {v.Impact} {v.Id}: {v.Help} — {string.Join("; ", v.Nodes.Take(3).Select(n => n.Html))}");
        Assert.True(bad.Count == 0, $"{what} has serious or critical accessibility violations: " +
            string.Join("; ", bad.Select(v => $"{v.Id} ({v.Impact}): {v.Help} at {string.Join(", ", v.Nodes.Take(3).Select(n => n.Html))}")));
    }
}
