using System.Security.Claims;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Components.Authorization;
using Microsoft.AspNetCore.Components.Server;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Audit;

namespace RunbookPortal.Web.Features.Account;

/// <summary>Section "Identity": the knobs of sign-in that operators may want to change.</summary>
public sealed class SignInPolicyOptions
{
    public int MaxFailedAccessAttempts { get; set; } = 5;
    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);
    public int RequiredPasswordLength { get; set; } = 12;

    /// <summary>Sign-in attempts one client address may make in a minute; beyond, 429 until the minute is over.</summary>
    public int SignInAttemptsPerMinute { get; set; } = 30;
}

public static class AccountExtensions
{
    private const string PortalScheme = "Portal";

    public static IHostApplicationBuilder AddPortalIdentity(this IHostApplicationBuilder builder)
    {
        var policy = builder.Configuration.GetSection("Identity").Get<SignInPolicyOptions>() ?? new SignInPolicyOptions();
        var services = builder.Services;

        services.AddAuthentication(o =>
            {
                o.DefaultScheme = PortalScheme;
                o.DefaultChallengeScheme = PortalScheme;
                o.DefaultForbidScheme = PortalScheme;
            })
            .AddPolicyScheme(PortalScheme, "Cookie or API token", o =>
                o.ForwardDefaultSelector = ctx => ApiTokenAuthenticationHandler.ReadToken(ctx.Request) is null
                    ? IdentityConstants.ApplicationScheme
                    : ApiTokenAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiTokenAuthenticationHandler>(ApiTokenAuthenticationHandler.SchemeName, null)
            .AddIdentityCookies();

        services.ConfigureApplicationCookie(o =>
        {
            o.Cookie.Name = "RunbookPortal.Auth";
            o.Cookie.HttpOnly = true;
            o.Cookie.SameSite = SameSiteMode.Lax;
            o.LoginPath = "/account/login";
            o.LogoutPath = "/account/logout";
            o.AccessDeniedPath = "/account/access-denied";
            o.ExpireTimeSpan = TimeSpan.FromHours(8);
            o.SlidingExpiration = true;
            // APIs and the hub answer 401/403 (problem details); only pages redirect.
            o.Events.OnRedirectToLogin = ctx => RedirectOrStatus(ctx, StatusCodes.Status401Unauthorized);
            o.Events.OnRedirectToAccessDenied = ctx => RedirectOrStatus(ctx, StatusCodes.Status403Forbidden);
            o.Events.OnValidatePrincipal = async ctx =>
            {
                if (!await SessionIsCurrentAsync(ctx))
                {
                    ctx.RejectPrincipal();
                    await ctx.HttpContext.SignOutAsync(IdentityConstants.ApplicationScheme);
                    return;
                }
                await SecurityStampValidator.ValidatePrincipalAsync(ctx); // refreshes the roles once a minute
            };
        });
        // The cookie's roles are read again within a minute; a session whose stamp is gone ends at once (above).
        services.Configure<SecurityStampValidatorOptions>(o => o.ValidationInterval = TimeSpan.FromMinutes(1));

        services.AddIdentityCore<PortalUser>(o =>
            {
                o.User.RequireUniqueEmail = true;
                o.Password.RequiredLength = policy.RequiredPasswordLength;
                o.Password.RequiredUniqueChars = 4;
                o.Password.RequireDigit = false;
                o.Password.RequireLowercase = false;
                o.Password.RequireUppercase = false;
                o.Password.RequireNonAlphanumeric = false;
                o.Lockout.AllowedForNewUsers = true;
                o.Lockout.MaxFailedAccessAttempts = policy.MaxFailedAccessAttempts;
                o.Lockout.DefaultLockoutTimeSpan = policy.LockoutDuration;
                o.SignIn.RequireConfirmedAccount = false;
            })
            .AddRoles<IdentityRole>()
            .AddEntityFrameworkStores<PortalDbContext>()
            .AddSignInManager<PortalSignInManager>()
            .AddDefaultTokenProviders();

        services.AddAuthorization(Policies.Add);
        services.AddCascadingAuthenticationState();
        services.AddScoped<AuthenticationStateProvider, PortalRevalidatingAuthenticationStateProvider>();

        services.AddScoped<ApiTokenService>();
        services.AddScoped<FirstRunService>();
        AddSignInRateLimit(services, policy.SignInAttemptsPerMinute);
        return builder;
    }

    /// <summary>
    /// Sign-in attempts (POST /account/login) are limited per client address (fixed one-minute windows); the lockout
    /// limits them per account. Everything else is not limited here.
    /// </summary>
    private static void AddSignInRateLimit(IServiceCollection services, int perMinute)
    {
        services.AddRateLimiter(o =>
        {
            o.GlobalLimiter = System.Threading.RateLimiting.PartitionedRateLimiter.Create<HttpContext, string>(ctx =>
                HttpMethods.IsPost(ctx.Request.Method) && ctx.Request.Path.StartsWithSegments("/account/login")
                    ? System.Threading.RateLimiting.RateLimitPartition.GetFixedWindowLimiter("sign-in " + ctx.Connection.RemoteIpAddress, _ =>
                        new System.Threading.RateLimiting.FixedWindowRateLimiterOptions { PermitLimit = perMinute, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 })
                    : System.Threading.RateLimiting.RateLimitPartition.GetNoLimiter(""));
            o.OnRejected = async (ctx, ct) =>
            {
                ctx.HttpContext.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                ctx.HttpContext.Response.Headers.RetryAfter = "60";
                ctx.HttpContext.Response.ContentType = "text/plain; charset=utf-8";
                await ctx.HttpContext.Response.WriteAsync("Too many sign-in attempts from your address. Wait a minute, then try again.", ct);
            };
        });
    }

    /// <summary>
    /// Whether the cookie's user still exists, is enabled and has the security stamp the cookie was issued with. Signing
    /// out, a password change, disabling and a role change renew the stamp, so every cookie issued before — a copied
    /// one too — stops working at its next request. One small query per cookie-authenticated request.
    /// </summary>
    private static async Task<bool> SessionIsCurrentAsync(CookieValidatePrincipalContext ctx)
    {
        var principal = ctx.Principal;
        var identity = ctx.HttpContext.RequestServices.GetRequiredService<IOptions<IdentityOptions>>().Value.ClaimsIdentity;
        var id = principal?.FindFirstValue(identity.UserIdClaimType);
        var stamp = principal?.FindFirstValue(identity.SecurityStampClaimType);
        if (id is null || stamp is null)
            return false;
        var db = ctx.HttpContext.RequestServices.GetRequiredService<PortalDbContext>();
        var user = await db.Users.AsNoTracking().Where(u => u.Id == id)
            .Select(u => new { u.SecurityStamp, u.IsDisabled }).FirstOrDefaultAsync(ctx.HttpContext.RequestAborted);
        return user is { IsDisabled: false } && user.SecurityStamp == stamp;
    }

    private static Task RedirectOrStatus(RedirectContext<CookieAuthenticationOptions> ctx, int status)
    {
        if (ctx.Request.Path.StartsWithSegments("/api") || ctx.Request.Path.StartsWithSegments("/hubs") || ctx.Request.Path.StartsWithSegments("/openapi"))
        {
            ctx.Response.StatusCode = status;
            return Task.CompletedTask;
        }
        ctx.Response.Redirect(ctx.RedirectUri);
        return Task.CompletedTask;
    }

    /// <summary>The name the audit trail records for a user.</summary>
    public static string ActorName(this ClaimsPrincipal user) =>
        user.FindFirstValue(ClaimTypes.Email) ?? user.Identity?.Name ?? "anonymous";
}

/// <summary>Refuses sign-in to disabled users (they get NotAllowed, never a session).</summary>
public sealed class PortalSignInManager(
    UserManager<PortalUser> userManager,
    IHttpContextAccessor contextAccessor,
    IUserClaimsPrincipalFactory<PortalUser> claimsFactory,
    IOptions<IdentityOptions> optionsAccessor,
    ILogger<SignInManager<PortalUser>> logger,
    IAuthenticationSchemeProvider schemes,
    IUserConfirmation<PortalUser> confirmation)
    : SignInManager<PortalUser>(userManager, contextAccessor, claimsFactory, optionsAccessor, logger, schemes, confirmation)
{
    public override async Task<bool> CanSignInAsync(PortalUser user) =>
        !user.IsDisabled && await base.CanSignInAsync(user);
}

/// <summary>Re-checks an open Blazor circuit's user every minute: disabled or changed users lose the session.</summary>
internal sealed class PortalRevalidatingAuthenticationStateProvider(
    ILoggerFactory loggerFactory,
    IServiceScopeFactory scopeFactory,
    IOptions<IdentityOptions> options)
    : RevalidatingServerAuthenticationStateProvider(loggerFactory)
{
    protected override TimeSpan RevalidationInterval => TimeSpan.FromMinutes(1);

    protected override async Task<bool> ValidateAuthenticationStateAsync(AuthenticationState authenticationState, CancellationToken cancellationToken)
    {
        await using var scope = scopeFactory.CreateAsyncScope();
        var users = scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>();
        var user = await users.GetUserAsync(authenticationState.User);
        if (user is null || user.IsDisabled)
            return false;
        var stamp = authenticationState.User.FindFirstValue(options.Value.ClaimsIdentity.SecurityStampClaimType);
        return stamp == await users.GetSecurityStampAsync(user);
    }
}
