using System.Globalization;
using System.Text;
using RunbookPortal.Web.Features.Account;

namespace RunbookPortal.Web.Features.Audit;

public sealed record AuditRecordDto(long Seq, DateTime At, string Actor, string Action, string? Target, string? Details, string Hash);

public static class AuditEndpoints
{
    public static IEndpointRouteBuilder MapAuditApi(this IEndpointRouteBuilder app)
    {
        var audit = app.MapGroup("/api/audit").RequireAuthorization(Policies.Auditor).WithTags("Audit");

        audit.MapGet("/", async (AuditLog log, long? after, string? actor, string? action, DateTime? from, DateTime? to, int? limit, CancellationToken ct) =>
            {
                if (limit is < 1 or > 1000)
                    return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["limit"] = ["limit must be between 1 and 1000."] }, title: "The request is not valid.");
                var records = await log.QueryAsync(new AuditQuery(after, actor, action, from, to), limit ?? 200, 0, ct);
                return Results.Ok(records.Select(r => new AuditRecordDto(r.Seq, r.At, r.Actor, r.Action, r.Target, r.Details, r.Hash)));
            })
            .WithSummary("Audit records in order; page with after={last seq}. Filters: actor (contains), action (exact, or prefix*), from, to.");

        audit.MapGet("/verify", async (AuditLog log, CancellationToken ct) => TypedResults.Ok(await log.VerifyAsync(ct)))
            .WithSummary("Checks the hash chain and names the first broken record.");

        audit.MapGet("/export", (AuditLog log, string? actor, string? action, DateTime? from, DateTime? to, HttpContext http) =>
                Results.Stream(async stream =>
                {
                    await using var writer = new StreamWriter(stream, new UTF8Encoding(false));
                    await writer.WriteLineAsync("seq,at,actor,action,target,details,hash");
                    await foreach (var r in log.StreamAsync(new AuditQuery(null, actor, action, from, to), http.RequestAborted))
                    {
                        await writer.WriteLineAsync(string.Join(',',
                            r.Seq.ToString(CultureInfo.InvariantCulture), r.At.ToString("O", CultureInfo.InvariantCulture),
                            Csv(r.Actor), Csv(r.Action), Csv(r.Target), Csv(r.Details), r.Hash));
                    }
                }, "text/csv", $"audit-{DateTime.UtcNow:yyyyMMdd-HHmmss}.csv"))
            .WithSummary("The filtered audit trail as CSV.");
        return app;
    }

    /// <summary>RFC 4180 quoting; a leading =, +, - or @ is prefixed so spreadsheets never run it as a formula.</summary>
    internal static string Csv(string? value)
    {
        if (string.IsNullOrEmpty(value))
            return "";
        if (value[0] is '=' or '+' or '-' or '@' or '\t' or '\r')
            value = "'" + value;
        return value.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? "\"" + value.Replace("\"", "\"\"") + "\"" : value;
    }
}
