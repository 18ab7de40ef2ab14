using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using RunbookPortal.Web.Tests.Infrastructure;

namespace RunbookPortal.Benchmarks;

/// <summary>One real portal process on a throwaway database, and an API client with the bootstrap token.</summary>
internal sealed class BenchPortal : IAsyncDisposable
{
    private const string Token = "benchmark-path-token-0123456789abcdef0123456789abcdef";

    public required PortalNodeProcess Process { get; init; }
    public required HttpClient Api { get; init; }

    public static async Task<BenchPortal> StartAsync(BenchStore store, IDictionary<string, string>? extra = null)
    {
        var settings = store.Settings.ToDictionary(s => s.Key, s => s.Value ?? "");
        settings["Bootstrap:AdminEmail"] = "admin@bench.test";
        settings["Bootstrap:AdminPassword"] = "benchmark admin password";
        settings["Bootstrap:ApiToken"] = Token;
        settings["Logging:LogLevel:Default"] = "Warning";
        foreach (var (k, v) in extra ?? new Dictionary<string, string>())
            settings[k] = v;
        var process = await PortalNodeProcess.StartAsync(settings);
        var api = new HttpClient { BaseAddress = process.BaseAddress };
        api.DefaultRequestHeaders.Authorization = new("Bearer", Token);
        return new BenchPortal { Process = process, Api = api };
    }

    /// <summary>Creates, submits and approves (by a second admin) the runbook <paramref name="yaml"/> named <paramref name="name"/>.</summary>
    public async Task PublishAsync(string name, string yaml)
    {
        (await Api.PostAsync("/api/runbooks", new StringContent(yaml, Encoding.UTF8, "application/yaml"))).EnsureSuccessStatusCode();
        (await Api.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/submit", new { })).EnsureSuccessStatusCode();
        // The bootstrap admin wrote it; a second admin reviews it.
        var email = $"reviewer-{name}@bench.test";
        (await Api.PostAsJsonAsync("/api/admin/users", new { email, password = "benchmark reviewer password", roles = new[] { "Admin" } })).EnsureSuccessStatusCode();
        var token = (await (await Api.PostAsJsonAsync($"/api/admin/users/{email}/tokens", new { name })).Content.ReadFromJsonAsync<JsonElement>()).GetProperty("token").GetString();
        using var reviewer = new HttpClient { BaseAddress = Api.BaseAddress };
        reviewer.DefaultRequestHeaders.Authorization = new("Bearer", token);
        (await reviewer.PostAsJsonAsync($"/api/runbooks/{name}/versions/1/approve", new { })).EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        Api.Dispose();
        await Process.DisposeAsync();
    }
}
