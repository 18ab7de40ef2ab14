using System.Security.Claims;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Approvals;

public static class ApprovalEndpoints
{
    public static IEndpointRouteBuilder MapApprovalApi(this IEndpointRouteBuilder app)
    {
        var approvals = app.MapGroup("/api/approvals").RequireAuthorization(Policies.Reader).WithTags("Approvals");

        approvals.MapGet("/", async (ApprovalService svc, ClaimsPrincipal me, string? status, string? scope, CancellationToken ct) =>
            {
                ApprovalStatus? wanted = null;
                if (!string.IsNullOrWhiteSpace(status) && !status.Equals("all", StringComparison.OrdinalIgnoreCase))
                {
                    if (!Enum.TryParse<ApprovalStatus>(status, ignoreCase: true, out var parsed) || !Enum.IsDefined(parsed))
                        return OperationResult.Invalid($"'{status}' is not an approval status; use pending, approved, rejected, expired, cancelled or all.").ToProblem();
                    wanted = parsed;
                }
                var narrowed = ApprovalScope.All;
                if (!string.IsNullOrWhiteSpace(scope) && !Enum.TryParse(scope, ignoreCase: true, out narrowed))
                    return OperationResult.Invalid($"'{scope}' is not a scope; use all, mine (waiting for my decision) or requested (my requests).").ToProblem();
                return Results.Ok(await svc.ListAsync(me.ActorName(), wanted, narrowed, ct: ct));
            })
            .WithSummary("Approval requests, newest first: status=pending|approved|rejected|expired|cancelled|all, scope=all|mine|requested.");

        approvals.MapGet("/{id:guid}", async (Guid id, ApprovalService svc, CancellationToken ct) =>
                await svc.DetailAsync(id, ct) is { } detail ? Results.Ok(detail) : NotFound())
            .WithSummary("One request with what an approver needs: the YAML and the diff base, each step as it will run (secrets masked), prerequisites, who may decide.");

        approvals.MapPost("/{id:guid}/approve", async (Guid id, DecisionRequest? body, ApprovalService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.ApproveAsync(me.ActorName(), id, body?.Comment, ct), id, svc, ct))
            .WithSummary("Approves { comment? }. Only holders of the request's approver role, never the requester; at the quorum the run is queued.");

        approvals.MapPost("/{id:guid}/reject", async (Guid id, DecisionRequest? body, ApprovalService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.RejectAsync(me.ActorName(), id, body?.Comment, ct), id, svc, ct))
            .WithSummary("Rejects { comment } (required): the run ends Rejected.");
        return app;
    }

    private static async Task<IResult> Answer(OperationResult result, Guid id, ApprovalService svc, CancellationToken ct) =>
        result.Succeeded ? Results.Ok(await svc.GetAsync(id, ct)) : result.ToProblem();

    private static IResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Not found.", detail: "There is no such approval request.");
}
