using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace RunbookPortal.Web.Tests.Infrastructure;

/// <summary>The real portal in-process on a real database, with the bootstrap admin and its API token.</summary>
/// <param name="time">The portal's clock (a FakeTimeProvider for tests of timers); the system clock by default.</param>
/// <param name="services">Changes to the portal's services, made after its own registrations.</param>
public sealed class PortalFactory(
    TestDatabase database,
    IDictionary<string, string?>? extraSettings = null,
    TimeProvider? time = null,
    Action<IServiceCollection>? services = null) : WebApplicationFactory<Program>
{
    public const string AdminEmail = "admin@portal.test";
    public const string AdminPassword = "correct horse battery staple";
    public const int MaxFailedAttempts = 3;

    public string AdminToken { get; } = "bootstrap-" + Guid.NewGuid().ToString("N") + Guid.NewGuid().ToString("N");
    public TestDatabase Database => database;

    /// <summary>Every log line the portal wrote, to prove secrets never reach the logs.</summary>
    public ConcurrentQueue<string> Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Testing");
        var settings = new Dictionary<string, string?>
        {
            ["Bootstrap:AdminEmail"] = AdminEmail,
            ["Bootstrap:AdminPassword"] = AdminPassword,
            ["Bootstrap:ApiToken"] = AdminToken,
            ["Identity:MaxFailedAccessAttempts"] = MaxFailedAttempts.ToString(),
            ["Identity:SignInAttemptsPerMinute"] = "10000", // the tests of a class sign in from one address; one test checks the limit
        };
        foreach (var (k, v) in database.Settings)
            settings[k] = v;
        foreach (var (k, v) in extraSettings ?? new Dictionary<string, string?>())
            settings[k] = v;
        foreach (var (k, v) in settings)
            builder.UseSetting(k, v);

        if (time is not null)
            builder.ConfigureServices(s => s.AddSingleton(time));
        if (services is not null)
            builder.ConfigureServices(services);
        builder.ConfigureLogging(l => l.AddProvider(new CollectingLoggerProvider(Logs)).SetMinimumLevel(LogLevel.Debug));
    }

    protected override IHost CreateHost(IHostBuilder builder)
    {
        builder.UseDefaultServiceProvider(o => { o.ValidateScopes = true; o.ValidateOnBuild = true; });
        return base.CreateHost(builder);
    }

    /// <summary>Where the portal listens when it runs on Kestrel (real sockets, for WebSockets); null: the in-memory test server.</summary>
    public Uri? Address { get; private set; }

    /// <summary>Runs the portal on Kestrel on a free port of 127.0.0.1, before anything else uses it.</summary>
    public Uri StartOnKestrel()
    {
        var port = PortalNodeProcess.FreePort();
        UseKestrel(o => o.Listen(System.Net.IPAddress.Loopback, port));
        StartServer();
        return Address = new Uri($"http://127.0.0.1:{port}");
    }

    public HttpClient CreateClient(string? token, bool followRedirects = false)
    {
        var options = new WebApplicationFactoryClientOptions { AllowAutoRedirect = followRedirects };
        if (Address is not null)
            options.BaseAddress = Address;
        var client = CreateClient(options);
        if (token is not null)
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return client;
    }

    public HttpClient AdminClient() => CreateClient(AdminToken);

    public const string UserPassword = "a long enough password";

    /// <summary>Creates a user with these roles through the admin API and answers an API client as that user.</summary>
    public async Task<(HttpClient Client, string Email, string Token)> CreateUserAsync(string who, params string[] roles)
    {
        var email = $"{who}-{Guid.NewGuid():N}"[..Math.Min(who.Length + 17, who.Length + 33)] + "@portal.test";
        var admin = AdminClient();
        var created = await admin.PostAsJsonAsync("/api/admin/users", new { email, password = UserPassword, roles });
        if (created.StatusCode != System.Net.HttpStatusCode.Created)
            throw new InvalidOperationException($"Creating {email} answered {created.StatusCode}: {await created.Content.ReadAsStringAsync()}");
        var response = await admin.PostAsJsonAsync($"/api/admin/users/{email}/tokens", new { name = "test" });
        var token = (await response.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("token").GetString()!;
        return (CreateClient(token), email, token);
    }

    public async Task<T> WithServiceAsync<TService, T>(Func<TService, Task<T>> work) where TService : notnull
    {
        await using var scope = Services.CreateAsyncScope();
        return await work(scope.ServiceProvider.GetRequiredService<TService>());
    }

    public override async ValueTask DisposeAsync()
    {
        await base.DisposeAsync();
        await database.DisposeAsync();
    }
}

internal sealed class CollectingLoggerProvider(ConcurrentQueue<string> sink) : ILoggerProvider
{
    public ILogger CreateLogger(string categoryName) => new Collector(categoryName, sink);
    public void Dispose() { }

    private sealed class Collector(string category, ConcurrentQueue<string> sink) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var line = $"{logLevel} {category}: {formatter(state, exception)}";
            if (state is IEnumerable<KeyValuePair<string, object?>> values)
                line += " " + string.Join(" ", values.Select(v => $"{v.Key}={v.Value}"));
            if (exception is not null)
                line += " " + exception;
            sink.Enqueue(line);
        }
    }
}
