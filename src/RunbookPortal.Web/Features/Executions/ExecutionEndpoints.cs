using System.Security.Claims;
using RunbookPortal.Engine.Execution;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Executions;

public sealed record CancelRequest(bool Rollback = false);
public sealed record ResumeRequest(string? FromStep, bool Force = false);
public sealed record StepInputRequest(string? Comment);

public static class ExecutionEndpoints
{
    public static IEndpointRouteBuilder MapExecutionApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/runbooks/{name}/executions", async (string name, StartExecutionRequest? body, ExecutionService executions, ClaimsPrincipal me, HttpContext http, CancellationToken ct) =>
            {
                // Read as sent: an empty header is a mistake to report, not a missing one (several headers read as one list, "a,b").
                var request = (body ?? new StartExecutionRequest(null)) with
                {
                    IdempotencyKey = http.Request.Headers.TryGetValue(IdempotencyKeys.Header, out var key) ? key.ToString() : null,
                };
                var started = await executions.StartAsync(me.ActorName(), me.IsInRole(Roles.Author) || me.IsInRole(Roles.Admin), name, request, ct);
                if (!started.Outcome.Succeeded)
                    return started.Outcome.ToProblem();
                var answer = new { id = started.Id, status = started.Status };
                if (!started.Replayed)
                    return Results.Accepted($"/api/executions/{started.Id}", answer);
                http.Response.Headers[IdempotencyKeys.ReplayedHeader] = "true";
                return Results.Ok(answer);
            })
            .RequireAuthorization(Policies.Operator).WithTags("Executions")
            .WithSummary("Starts the active version with { parameters, dryRun } (authors may dry-run a draft with { version }); answers 202 { id, status }. "
                         + "Safe to retry with an Idempotency-Key header (at most 200 printable ASCII characters, else 400): the same key from the same user within 24 h "
                         + "answers 200 { id, status } of the execution it started (header Idempotent-Replayed: true) and starts nothing; the key reused for another "
                         + "runbook, version, dry-run flag or parameter values answers 422. After 24 h the key starts a new execution.");

        app.MapHub<ExecutionHub>(ExecutionHub.Path);

        var executions = app.MapGroup("/api/executions").RequireAuthorization(Policies.Reader).WithTags("Executions");

        executions.MapGet("/", async (ExecutionService svc, ExecutionStatus? status, string? runbook, string? requestedBy, DateTime? from, DateTime? to, long? page, long? pageSize, CancellationToken ct) =>
            {
                if (Paging.Check(page ?? 0, pageSize ?? 50) is { Succeeded: false } refused)
                    return refused.ToProblem();
                var (items, total) = await svc.ListAsync(new ExecutionQuery(status, runbook, requestedBy, from, to, (int)(page ?? 0), (int)(pageSize ?? 50)), ct);
                return Results.Ok(new { items, total });
            })
            .WithSummary($"Executions, newest first; filters: status, runbook, requestedBy, from, to; paging (page from 0, pageSize 1–{Paging.MaxPageSize}, default 50).");

        executions.MapGet("/running", async (RunningNowQuery running, CancellationToken ct) => Results.Ok(await running.GetAsync(ct)))
            .WithSummary($"What runs now: every execution that has not ended (queued, running, rolling back, awaiting approval, waiting for input), newest first "
                         + $"(at most {RunningNowQuery.MaxActive}; activeTotal counts them all), with its current step and approval; and the failed or interrupted ones "
                         + $"of the last 24 hours (at most {RunningNowQuery.MaxFailures}), with their failed step and reason. Parameters are not included.");

        executions.MapGet("/{id:guid}", async (Guid id, ExecutionService svc, CancellationToken ct) =>
                await svc.GetAsync(id, ct) is { } e ? Results.Ok(e) : NotFound())
            .WithSummary("One execution with its steps; secret parameters are masked.");

        executions.MapGet("/{id:guid}/events", async (Guid id, long? after, int? limit, ExecutionService svc, CancellationToken ct) =>
                await svc.ExistsAsync(id, ct) ? Results.Ok(await svc.EventsAsync(id, after ?? 0, limit ?? 1000, ct)) : NotFound())
            .WithSummary("The timeline after a seq: every event exactly once, in order.");

        executions.MapGet("/{id:guid}/log", async (Guid id, string? step, ExecutionService svc, HttpContext http, CancellationToken ct) =>
            {
                if (!await svc.ExistsAsync(id, ct))
                    return NotFound();
                if (step is not null && !await svc.HasStepAsync(id, step, ct))
                    return TypedResults.Problem(statusCode: 404, title: "Not found.", detail: $"There is no step '{step}' in this execution.");
                return Results.Stream(async body =>
                {
                    await using var writer = new StreamWriter(body, new System.Text.UTF8Encoding(false), bufferSize: 64 * 1024) { NewLine = "\n" };
                    await foreach (var line in svc.LogAsync(id, step, http.RequestAborted))
                        await writer.WriteLineAsync(line.ToDownloadLine());
                }, "text/plain; charset=utf-8", ExecutionPage.LogFileName(id, step));
            })
            .WithSummary("The run's output as text (?step=<id> for one step, <id>.rollback for its rollback), a line each: time (UTC), step, stream, then the text as the step wrote it "
                         + "(secrets masked, ANSI escape sequences kept); read from the database in pages, so any length streams.");

        executions.MapPost("/{id:guid}/cancel", async (Guid id, CancelRequest? body, ExecutionService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.CancelAsync(me.ActorName(), id, body?.Rollback ?? false, ct), id, svc, ct))
            .RequireAuthorization(Policies.Operator).WithSummary("Cancels: kills the running step; { rollback: true } rolls back the succeeded steps.");

        executions.MapPost("/{id:guid}/resume", async (Guid id, ResumeRequest? body, ExecutionService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.ResumeAsync(me.ActorName(), id, body?.FromStep, ct, body?.Force ?? false, me.IsInRole(Roles.Admin)), id, svc, ct))
            .RequireAuthorization(Policies.Operator)
            .WithSummary("Resumes a failed, interrupted or cancelled run that passed its approval, from a step (default: the failed one); { force: true } lets an Admin resume a Deprecated or Archived version.");

        executions.MapPost("/{id:guid}/steps/{stepId}/continue", async (Guid id, string stepId, StepInputRequest? body, ExecutionService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.DecideStepAsync(me.ActorName(), id, stepId, ManualDecision.Continue, body?.Comment, ct), id, svc, ct))
            .WithSummary("Continues the manual step that waits { comment? } (the step's role, default Operator, or an Admin).");

        executions.MapPost("/{id:guid}/steps/{stepId}/abort", async (Guid id, string stepId, StepInputRequest? body, ExecutionService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.DecideStepAsync(me.ActorName(), id, stepId, ManualDecision.Abort, body?.Comment, ct), id, svc, ct))
            .WithSummary("Aborts the manual step that waits { comment? }: a required step's abort rolls back the succeeded steps and the run fails.");

        executions.MapPost("/{id:guid}/rollback", async (Guid id, ExecutionService svc, ClaimsPrincipal me, CancellationToken ct) =>
                await Answer(await svc.RollbackAsync(me.ActorName(), id, ct), id, svc, ct))
            .RequireAuthorization(Policies.Operator).WithSummary("Rolls back the succeeded steps of a failed, interrupted or cancelled run, in reverse order.");
        return app;
    }

    private static async Task<IResult> Answer(OperationResult result, Guid id, ExecutionService svc, CancellationToken ct) =>
        result.Succeeded ? Results.Ok(await svc.GetAsync(id, ct)) : result.ToProblem();

    private static IResult NotFound() => TypedResults.Problem(statusCode: 404, title: "Not found.", detail: "There is no such execution.");
}
