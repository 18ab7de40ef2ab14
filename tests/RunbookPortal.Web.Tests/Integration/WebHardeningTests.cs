using System.Net;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// On real Kestrel sockets: behind a TLS proxy (ForwardedHeaders enabled) the portal believes the proxy's
/// X-Forwarded-Proto and its sign-in cookie is Secure, and without it nobody can make it believe a forwarded scheme;
/// sign-in attempts from one address are throttled.
/// </summary>
public sealed class WebHardeningTests
{
    private static async Task<string> SignInCookieAsync(IDictionary<string, string?> settings)
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), settings);
        var address = portal.StartOnKestrel();
        // A plain client over the socket: the sign-in's redirect (now to https) is read, not followed.
        using var browser = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer() }) { BaseAddress = address };
        browser.DefaultRequestHeaders.Add("X-Forwarded-Proto", "https");
        var response = await FormPost.SubmitAsync(browser, "/account/login", "login",
            new Dictionary<string, string> { ["Input.Email"] = PortalFactory.AdminEmail, ["Input.Password"] = PortalFactory.AdminPassword });
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
        return Assert.Single(response.Headers.GetValues("Set-Cookie"), c => c.StartsWith("RunbookPortal.Auth=", StringComparison.Ordinal));
    }

    [Fact]
    public async Task BehindAKnownProxy_TheForwardedSchemeMakesTheCookieSecure()
    {
        var cookie = await SignInCookieAsync(new Dictionary<string, string?> { ["ForwardedHeaders:Enabled"] = "true" });
        Assert.Contains("; secure", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("; httponly", cookie, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task SignInAttempts_FromOneAddress_AreThrottled_WhileTheRestOfThePortalAnswers()
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), new Dictionary<string, string?> { ["Identity:SignInAttemptsPerMinute"] = "20" });
        var address = portal.StartOnKestrel();
        using var attacker = new HttpClient(new HttpClientHandler { AllowAutoRedirect = false, CookieContainer = new CookieContainer() }) { BaseAddress = address };
        var statuses = new List<HttpStatusCode>();
        for (var attempt = 0; attempt < 200; attempt++)
        {
            // Each attempt a different account: the per-account lockout alone would never stop this.
            var response = await attacker.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string>
            {
                ["_handler"] = "login", ["Input.Email"] = $"guess{attempt}@portal.test", ["Input.Password"] = "password123456",
            }));
            statuses.Add(response.StatusCode);
        }
        Assert.True(statuses.Count(s => s == HttpStatusCode.TooManyRequests) >= 180, $"only {statuses.Count(s => s == HttpStatusCode.TooManyRequests)} of 200 attempts were throttled");
        var throttled = await attacker.PostAsync("/account/login", new FormUrlEncodedContent(new Dictionary<string, string> { ["_handler"] = "login" }));
        Assert.Equal(HttpStatusCode.TooManyRequests, throttled.StatusCode);
        Assert.Equal("60", throttled.Headers.RetryAfter?.ToString());
        Assert.Contains("Too many sign-in attempts", await throttled.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, (await attacker.GetAsync("/account/login")).StatusCode); // the page itself still answers
        Assert.Equal(HttpStatusCode.OK, (await attacker.GetAsync("/healthz")).StatusCode);
    }

    [Fact]
    public async Task AKnownProxyThatIsNotAnAddress_StopsTheStartWithAClearMessage()
    {
        await using var portal = new PortalFactory(TestDatabase.Sqlite(), new Dictionary<string, string?>
        {
            ["ForwardedHeaders:Enabled"] = "true",
            ["ForwardedHeaders:KnownProxies:0"] = "proxy.internal",
        });
        var failure = Assert.ThrowsAny<Exception>(() => portal.Server);
        Assert.Contains("ForwardedHeaders:KnownProxies holds 'proxy.internal'", failure.GetBaseException().Message);
    }

    [Fact]
    public async Task ByDefault_AForwardedSchemeIsNotBelieved()
    {
        var cookie = await SignInCookieAsync(new Dictionary<string, string?>());
        Assert.DoesNotContain("; secure", cookie, StringComparison.OrdinalIgnoreCase);
    }
}
