using System.Text.Json;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Options;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using Scalar.AspNetCore;

namespace RunbookPortal.Web.Infrastructure;

/// <summary>Configuration sources, problem details, OpenAPI, health, start-up work: what every feature stands on.</summary>
public static class PlatformExtensions
{
    /// <summary>
    /// The repository keeps appsettings.Development.json at its root; the build copies it next to the app.
    /// In Development it is read with the same precedence as a content-root appsettings.{env}.json.
    /// </summary>
    public static IHostApplicationBuilder AddRepositorySettings(this IHostApplicationBuilder builder)
    {
        if (!builder.Environment.IsDevelopment())
            return builder;
        var file = Path.Combine(AppContext.BaseDirectory, "appsettings.Development.json");
        if (!File.Exists(file) || Path.GetFullPath(file) == Path.GetFullPath(Path.Combine(builder.Environment.ContentRootPath, "appsettings.Development.json")))
            return builder;
        var sources = builder.Configuration.Sources;
        var index = sources.Select((s, i) => (s, i)).Where(x => x.s is JsonConfigurationSource j && j.Path == "appsettings.Development.json").Select(x => x.i + 1).FirstOrDefault();
        if (index == 0)
            index = sources.Select((s, i) => (s, i)).Where(x => x.s is JsonConfigurationSource).Select(x => x.i + 1).DefaultIfEmpty(0).Max();
        sources.Insert(index, new JsonConfigurationSource
        {
            Path = "appsettings.Development.json",
            Optional = true,
            ReloadOnChange = false,
            FileProvider = new PhysicalFileProvider(AppContext.BaseDirectory),
        });
        return builder;
    }

    public static IHostApplicationBuilder AddPortalPlatform(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddSingleton(TimeProvider.System);
        // Enums travel as their names ("Active", not 2) in every API answer.
        services.ConfigureHttpJsonOptions(o => o.SerializerOptions.Converters.Add(new System.Text.Json.Serialization.JsonStringEnumConverter()));
        services.AddProblemDetails(o => o.CustomizeProblemDetails = ctx =>
        {
            ctx.ProblemDetails.Instance ??= ctx.HttpContext.Request.Path;
            ctx.ProblemDetails.Extensions["traceId"] = ctx.HttpContext.TraceIdentifier;
        });
        services.AddOpenApi(o => o.AddDocumentTransformer((doc, _, _) =>
        {
            doc.Info.Title = "RunbookPortal API";
            doc.Info.Description = "Runbooks, executions, approvals and the audit trail. Authenticate with `Authorization: Bearer <API token>`.";
            return Task.CompletedTask;
        }));
        services.AddOptions<BootstrapOptions>().BindConfiguration("Bootstrap");
        AddForwardedHeaders(builder);
        services.AddHostedService<PortalInitializer>();
        return builder;
    }

    /// <summary>
    /// Section "ForwardedHeaders": behind a TLS proxy (<c>Enabled: true</c>) the portal takes the scheme and the client's
    /// address from <c>X-Forwarded-Proto</c> and <c>X-Forwarded-For</c>, from the proxies in <c>KnownProxies</c> (IP
    /// addresses or networks such as 10.0.0.0/8; loopback is always one) and from no one else: it then knows it is
    /// on HTTPS, so its cookies are Secure and it sends HSTS.
    /// </summary>
    private static void AddForwardedHeaders(IHostApplicationBuilder builder)
    {
        var section = builder.Configuration.GetSection("ForwardedHeaders");
        if (!section.GetValue<bool>("Enabled"))
            return;
        var proxies = section.GetSection("KnownProxies").Get<string[]>() ?? [];
        var networks = new List<System.Net.IPNetwork>();
        foreach (var proxy in proxies)
        {
            if (System.Net.IPNetwork.TryParse(proxy, out var network))
                networks.Add(network);
            else if (System.Net.IPAddress.TryParse(proxy, out var address))
                networks.Add(new System.Net.IPNetwork(address, address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128));
            else
                throw new StartupException($"ForwardedHeaders:KnownProxies holds '{proxy}', which is neither an IP address nor a network such as 10.0.0.0/8.");
        }
        builder.Services.Configure<ForwardedHeadersOptions>(o =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            foreach (var network in networks)
                o.KnownIPNetworks.Add(network);
        });
    }

    public static WebApplication UsePortalPlatform(this WebApplication app)
    {
        if (app.Configuration.GetValue<bool>("ForwardedHeaders:Enabled"))
            app.UseForwardedHeaders();
        app.UseExceptionHandler();
        // Empty 4xx/5xx answers of the API become problem details; pages keep their own handling.
        app.UseStatusCodePages(async ctx =>
        {
            var http = ctx.HttpContext;
            if (!IsApi(http.Request.Path))
                return;
            var problems = http.RequestServices.GetRequiredService<IProblemDetailsService>();
            await problems.TryWriteAsync(new ProblemDetailsContext
            {
                HttpContext = http,
                ProblemDetails =
                {
                    Status = http.Response.StatusCode,
                    Title = http.Response.StatusCode switch
                    {
                        400 => "The request is not valid.",
                        401 => "Authentication required.",
                        403 => "You do not have the role this needs.",
                        404 => "Not found.",
                        405 => "Method not allowed.",
                        _ => null,
                    },
                    Detail = http.Response.StatusCode switch
                    {
                        // What ASP.NET Core answers on its own when a route, query or header value does not bind.
                        400 => "A value in the address, the query or a header could not be read as what it must be (a whole number, a date, a GUID or one of the listed names), or the body is not the JSON this route takes.",
                        401 => "Sign in, or send a valid API token as `Authorization: Bearer <token>`.",
                        _ => null,
                    },
                },
            });
        });
        if (!app.Environment.IsDevelopment())
            app.UseHsts();
        return app;
    }

    public static IEndpointRouteBuilder MapPortalOperations(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false }).AllowAnonymous();
        app.MapHealthChecks("/readyz", new HealthCheckOptions
        {
            Predicate = c => c.Tags.Contains("ready"),
            ResponseWriter = async (ctx, report) =>
            {
                ctx.Response.ContentType = "application/json";
                await JsonSerializer.SerializeAsync(ctx.Response.Body, new
                {
                    status = report.Status.ToString(),
                    checks = report.Entries.Select(e => new { name = e.Key, status = e.Value.Status.ToString(), description = e.Value.Description }),
                });
            },
        }).AllowAnonymous();
        app.MapOpenApi();
        app.MapScalarApiReference("/api-docs", o => o.WithTitle("RunbookPortal API"));
        return app;
    }

    internal static bool IsApi(PathString path) =>
        path.StartsWithSegments("/api") || path.StartsWithSegments("/hubs") || path.StartsWithSegments("/openapi");
}

/// <summary>
/// Runs before the web server listens: migrates the database and applies the bootstrap settings.
/// A failure stops the host with a <see cref="StartupException"/> that says what to do.
/// </summary>
internal sealed class PortalInitializer(IServiceProvider services, IOptions<BootstrapOptions> bootstrap, ILogger<PortalInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            var started = System.Diagnostics.Stopwatch.StartNew();
            logger.LogInformation("Opening the database and applying its migrations.");
            await services.MigrateDatabaseAsync(cancellationToken);
            await using var scope = services.CreateAsyncScope();
            await services.GetRequiredService<KeyRingProtection>().SealAsync(
                scope.ServiceProvider.GetRequiredService<PortalDbContext>(), services.GetRequiredService<ILoggerFactory>(), cancellationToken);
            var firstRun = scope.ServiceProvider.GetRequiredService<FirstRunService>();
            await firstRun.ApplyBootstrapAsync(bootstrap.Value, cancellationToken);
            logger.LogInformation("The database is ready ({Elapsed} ms).", started.ElapsedMilliseconds);
            if (await firstRun.IsSetupNeededAsync(cancellationToken))
                logger.LogWarning("RunbookPortal has no users yet: open /account/setup in a browser to create the first administrator (or set Bootstrap:AdminEmail and Bootstrap:AdminPassword).");
        }
        catch (StartupException ex)
        {
            logger.LogCritical("RunbookPortal cannot start: {Reason}", ex.Message);
            throw;
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
