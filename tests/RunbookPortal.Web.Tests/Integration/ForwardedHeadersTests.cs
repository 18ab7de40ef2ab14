using System.Net;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Web.Tests.Integration;

/// <summary>
/// Behind a TLS proxy: with ForwardedHeaders enabled the portal believes the proxy's X-Forwarded-Proto and its sign-in
/// cookie is Secure; without it (the default), nobody can make it believe a forwarded scheme. Real Kestrel, real sockets.
/// </summary>
public sealed class ForwardedHeadersTests
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
