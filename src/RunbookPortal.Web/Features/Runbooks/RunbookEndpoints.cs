using System.Security.Claims;
using System.Text;
using Microsoft.AspNetCore.Http.HttpResults;
using RunbookPortal.Engine.Runbooks;
using RunbookPortal.Web.Data;
using RunbookPortal.Web.Features.Account;
using RunbookPortal.Web.Infrastructure;

namespace RunbookPortal.Web.Features.Runbooks;

public sealed record DiagnosticDto(int Line, int Column, string Severity, string Path, string Message)
{
    public static DiagnosticDto From(RunbookDiagnostic d) => new(d.Line, d.Column, d.Severity.ToString().ToLowerInvariant(), d.Path, d.Message);
}

public sealed record ValidationResponse(bool Valid, IReadOnlyList<DiagnosticDto> Diagnostics);
public sealed record SavedVersionResponse(string Name, int Version, IReadOnlyList<DiagnosticDto> Diagnostics);
public sealed record LifecycleRequest(string? Comment);
public sealed record ImportFileResult(string File, bool Imported, string? Name, int? Version, string? Error, IReadOnlyList<DiagnosticDto> Diagnostics)
{
    public static ImportFileResult Refused(string file, string error) => new(file, false, null, null, error, []);
}

public static class RunbookEndpoints
{
    /// <summary>The largest YAML body accepted; the validator reports the 1 MiB document limit itself.</summary>
    private const int MaxBodyBytes = 2 * 1024 * 1024;

    public static IEndpointRouteBuilder MapRunbookApi(this IEndpointRouteBuilder app)
    {
        // The JSON Schema of runbooks/v1, used by the editor (monaco-yaml) and by anyone writing runbooks elsewhere.
        app.MapGet("/schemas/runbook-v1.json", () =>
            {
                var path = Path.Combine(AppContext.BaseDirectory, "wwwroot-assets", "schemas", "runbook-v1.json");
                return File.Exists(path)
                    ? Results.File(path, "application/schema+json")
                    : TypedResults.Problem(statusCode: 404, title: "Not found.", detail: "The runbook schema is missing from this installation.");
            })
            .WithTags("Runbooks").WithSummary("The JSON Schema of the runbooks/v1 format.");

        var runbooks = app.MapGroup("/api/runbooks").RequireAuthorization(Policies.Reader).WithTags("Runbooks");

        runbooks.MapPost("/validate", async (HttpRequest request) =>
            {
                var yaml = await ReadYamlAsync(request);
                if (yaml is null)
                    return TooLarge();
                var result = RunbookValidator.Validate(yaml);
                return Results.Ok(new ValidationResponse(result.IsValid, result.Diagnostics.Select(DiagnosticDto.From).ToList()));
            })
            .Accepts<string>("application/yaml").RequireAuthorization(Policies.Author)
            .WithSummary("Validates runbook YAML; answers every diagnostic with 1-based line and column.");

        runbooks.MapGet("/", async (RunbookCatalog catalog, string? search, string? type, string? tag, RunbookVersionStatus? status, string? owner, string? sort, bool? desc, long? page, long? pageSize, CancellationToken ct) =>
                Paging.Check(page ?? 0, pageSize ?? 25) is { Succeeded: false } refused
                    ? refused.ToProblem()
                    : Results.Ok(await catalog.SearchAsync(new CatalogQuery(search, type, tag, status, owner, sort ?? "name", desc ?? false, (int)(page ?? 0), (int)(pageSize ?? 25)), ct)))
            .WithSummary($"The catalog: full-text search over name, title, description and tags; facets; paging (page from 0, pageSize 1–{Paging.MaxPageSize}, default 25).");

        runbooks.MapPost("/", async (HttpRequest request, RunbookCatalog catalog, ClaimsPrincipal me, CancellationToken ct) =>
            {
                var yaml = await ReadYamlAsync(request);
                if (yaml is null)
                    return TooLarge();
                var saved = await catalog.CreateAsync(me.ActorName(), yaml, ct);
                return saved.Succeeded
                    ? Results.Created($"/api/runbooks/{saved.Name}", new SavedVersionResponse(saved.Name!, saved.Version!.Value, saved.Diagnostics.Select(DiagnosticDto.From).ToList()))
                    : Problem(saved);
            })
            .Accepts<string>("application/yaml").RequireAuthorization(Policies.Author)
            .WithSummary("Creates a runbook from YAML (its first, draft version).");

        runbooks.MapGet("/{name}", async (string name, RunbookCatalog catalog, CancellationToken ct) =>
                await catalog.GetAsync(name, ct) is { } details ? Results.Ok(details) : NotFound($"There is no runbook named '{name}'."))
            .WithSummary("A runbook with its versions and lifecycle history.");

        runbooks.MapPut("/{name}", async (string name, HttpRequest request, RunbookCatalog catalog, ClaimsPrincipal me, CancellationToken ct) =>
            {
                var yaml = await ReadYamlAsync(request);
                if (yaml is null)
                    return TooLarge();
                var saved = await catalog.SaveDraftAsync(me.ActorName(), name, yaml, ct);
                return saved.Succeeded
                    ? Results.Ok(new SavedVersionResponse(saved.Name!, saved.Version!.Value, saved.Diagnostics.Select(DiagnosticDto.From).ToList()))
                    : Problem(saved);
            })
            .Accepts<string>("application/yaml").RequireAuthorization(Policies.Author)
            .WithSummary("Saves YAML as the draft: updates the latest draft, or starts the next version after a published one.");

        runbooks.MapGet("/{name}/versions/{version:int}", async (string name, int version, RunbookCatalog catalog, CancellationToken ct) =>
                await catalog.GetVersionAsync(name, version, ct) is { } v ? Results.Ok(v) : NotFound($"Runbook '{name}' has no version {version}."))
            .WithSummary("One version with its YAML.");

        runbooks.MapGet("/{name}/versions/{version:int}/yaml", async (string name, int version, RunbookCatalog catalog, CancellationToken ct) =>
                await catalog.GetVersionAsync(name, version, ct) is { } v
                    ? Results.File(Encoding.UTF8.GetBytes(v.Yaml), "application/yaml", $"{name}-v{version}.yaml")
                    : NotFound($"Runbook '{name}' has no version {version}."))
            .WithSummary("Downloads one version's YAML.");

        runbooks.MapPost("/{name}/versions/{version:int}/{action}", async (string name, int version, string action, LifecycleRequest? body, RunbookCatalog catalog, ClaimsPrincipal me, CancellationToken ct) =>
            {
                if (!Enum.TryParse<LifecycleAction>(action, ignoreCase: true, out var lifecycle) || int.TryParse(action, out _))
                    return NotFound($"Unknown action '{action}'. Use submit, approve, reject, deprecate or archive.");
                var result = await catalog.TransitionAsync(me.ActorName(), me.IsInRole(Roles.Author) || me.IsInRole(Roles.Admin), name, version, lifecycle, body?.Comment, ct);
                return result.Succeeded ? Results.Ok(await catalog.GetVersionAsync(name, version, ct)) : result.ToProblem();
            })
            .RequireAuthorization(Policies.Author)
            .WithSummary("Lifecycle: submit, approve (by another author), reject (comment required), deprecate, archive.");

        runbooks.MapPost("/import", async (IFormFileCollection files, RunbookCatalog catalog, ClaimsPrincipal me, CancellationToken ct) =>
            {
                if (files.Count == 0)
                    return TypedResults.Problem(statusCode: 400, title: "The request is not valid.", detail: "Attach one or more .yaml files.");
                var results = new List<ImportFileResult>();
                foreach (var file in files)
                    results.Add(await ImportOneAsync(file, catalog, me.ActorName(), ct));
                return Results.Ok(results);
            })
            .DisableAntiforgery().RequireAuthorization(Policies.Author)
            .WithSummary("Imports one or many YAML files (multipart); each is validated and reported on its own.");

        runbooks.MapGet("/samples", () => Results.Ok(RunbookSamples.All.Select(s => new { s.Name, s.Type })))
            .RequireAuthorization(Policies.Author).WithSummary("The sample runbooks that ship with the portal.");

        runbooks.MapPost("/samples/{sample}", async (string sample, RunbookCatalog catalog, ClaimsPrincipal me, CancellationToken ct) =>
            {
                var found = RunbookSamples.All.FirstOrDefault(s => s.Name == sample);
                if (found is null)
                    return NotFound($"There is no sample named '{sample}'.");
                var saved = await catalog.CreateAsync(me.ActorName(), found.Yaml, ct);
                return saved.Succeeded ? Results.Created($"/api/runbooks/{saved.Name}", new SavedVersionResponse(saved.Name!, saved.Version!.Value, [])) : Problem(saved);
            })
            .RequireAuthorization(Policies.Author).WithSummary("Loads a sample runbook into the catalog as a draft.");
        return app;
    }

    private static async Task<ImportFileResult> ImportOneAsync(IFormFile file, RunbookCatalog catalog, string actor, CancellationToken ct)
    {
        if (file.Length > MaxBodyBytes)
            return ImportFileResult.Refused(file.FileName, "The file is larger than 2 MiB.");
        using var reader = new StreamReader(file.OpenReadStream(), Encoding.UTF8);
        return await catalog.ImportAsync(actor, file.FileName, await reader.ReadToEndAsync(ct), ct);
    }

    private static async Task<string?> ReadYamlAsync(HttpRequest request)
    {
        if (request.ContentLength > MaxBodyBytes)
            return null;
        using var reader = new StreamReader(request.Body, Encoding.UTF8);
        var text = new StringBuilder();
        var buffer = new char[16 * 1024];
        int read;
        while ((read = await reader.ReadAsync(buffer, request.HttpContext.RequestAborted)) > 0)
        {
            text.Append(buffer, 0, read);
            if (text.Length > MaxBodyBytes)
                return null;
        }
        return text.ToString();
    }

    private static ProblemHttpResult TooLarge() =>
        TypedResults.Problem(statusCode: 413, title: "Too large.", detail: "A runbook document may be at most 1 MiB.");

    private static ProblemHttpResult NotFound(string detail) => TypedResults.Problem(statusCode: 404, title: "Not found.", detail: detail);

    private static IResult Problem(RunbookSaveResult saved)
    {
        var status = saved.Outcome.Error switch
        {
            OperationError.NotFound => 404,
            OperationError.Conflict => 409,
            OperationError.Forbidden => 403,
            _ => 400,
        };
        return TypedResults.Problem(statusCode: status, title: status == 400 ? "The runbook is not valid." : status == 409 ? "Conflict." : "Not found.",
            detail: saved.Outcome.Message,
            extensions: new Dictionary<string, object?> { ["diagnostics"] = saved.Diagnostics.Select(DiagnosticDto.From).ToList() });
    }
}
