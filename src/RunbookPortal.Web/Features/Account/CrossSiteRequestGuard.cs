namespace RunbookPortal.Web.Features.Account;

/// <summary>
/// Refuses a state-changing request (POST, PUT, PATCH, DELETE) that another site's page made in a signed-in person's
/// browser: its cookie would go with it, so without this check any page could import runbooks or start runs in their
/// name. The browser says where a request comes from (<c>Sec-Fetch-Site</c>, and <c>Origin</c> in older browsers);
/// a request of another origin is answered 403 unless it carries an API token, which a foreign page cannot add.
/// Requests without either header (scripts, CI pipelines, curl) are not browsers' cross-site requests and pass.
/// </summary>
public static class CrossSiteRequestGuard
{
    public static IApplicationBuilder UseCrossSiteRequestGuard(this IApplicationBuilder app) =>
        app.Use(async (context, next) =>
        {
            if (IsRefused(context.Request))
            {
                context.Response.StatusCode = StatusCodes.Status403Forbidden;
                await Results.Problem(
                    title: "Cross-site request refused.",
                    detail: "This request came from a page of another site. Make it from the portal's own pages, or send an API token (Authorization: Bearer …).",
                    statusCode: StatusCodes.Status403Forbidden).ExecuteAsync(context);
                return;
            }
            await next(context);
        });

    internal static bool IsRefused(HttpRequest request)
    {
        if (HttpMethods.IsGet(request.Method) || HttpMethods.IsHead(request.Method) || HttpMethods.IsOptions(request.Method) || HttpMethods.IsTrace(request.Method))
            return false;
        if (ApiTokenAuthenticationHandler.ReadToken(request) is not null)
            return false;
        string? site = request.Headers["Sec-Fetch-Site"];
        if (!string.IsNullOrEmpty(site))
            return site is not ("same-origin" or "none");
        string? origin = request.Headers.Origin;
        if (string.IsNullOrEmpty(origin))
            return false;
        // Older browsers send only Origin: its host must be the one asked (not the scheme: behind a TLS proxy the
        // portal may see http).
        return !Uri.TryCreate(origin, UriKind.Absolute, out var from)
            || !string.Equals(from.Host, request.Host.Host, StringComparison.OrdinalIgnoreCase)
            || (from.IsDefaultPort ? request.Host.Port is not (null or 80 or 443) : request.Host.Port != from.Port);
    }
}
