namespace RunbookPortal.Web.Infrastructure;

public enum OperationError
{
    None,
    Invalid,
    NotFound,
    Conflict,
    Forbidden,
    /// <summary>Well-formed, but it contradicts what the server already holds for it (an idempotency key used for another request).</summary>
    Unprocessable,
}

/// <summary>What a feature service answers: success, or a kind of failure with messages a person can act on.</summary>
public sealed record OperationResult(OperationError Error, string? Message = null, IReadOnlyDictionary<string, string[]>? FieldErrors = null)
{
    public static readonly OperationResult Ok = new(OperationError.None);
    public bool Succeeded => Error == OperationError.None;

    public static OperationResult Invalid(string message, IReadOnlyDictionary<string, string[]>? fields = null) => new(OperationError.Invalid, message, fields);
    public static OperationResult NotFound(string message) => new(OperationError.NotFound, message);
    public static OperationResult Conflict(string message) => new(OperationError.Conflict, message);
    public static OperationResult Forbidden(string message) => new(OperationError.Forbidden, message);
    public static OperationResult Unprocessable(string message) => new(OperationError.Unprocessable, message);

    /// <summary>All messages in one sentence list, for a snackbar.</summary>
    public string Describe() =>
        FieldErrors is { Count: > 0 } f ? string.Join(" ", f.Values.SelectMany(v => v)) : Message ?? Error.ToString();

    /// <summary>The RFC 7807 answer of an API for this result.</summary>
    public IResult ToProblem()
    {
        if (Error == OperationError.Invalid && FieldErrors is { Count: > 0 })
            return TypedResults.ValidationProblem(FieldErrors.ToDictionary(), detail: Message, title: "The request is not valid.");
        var (status, title) = Error switch
        {
            OperationError.Invalid => (StatusCodes.Status400BadRequest, "The request is not valid."),
            OperationError.NotFound => (StatusCodes.Status404NotFound, "Not found."),
            OperationError.Conflict => (StatusCodes.Status409Conflict, "Conflict."),
            OperationError.Forbidden => (StatusCodes.Status403Forbidden, "Forbidden."),
            OperationError.Unprocessable => (StatusCodes.Status422UnprocessableEntity, "The request cannot be processed."),
            _ => (StatusCodes.Status500InternalServerError, "Unexpected error."),
        };
        return TypedResults.Problem(detail: Message, statusCode: status, title: title);
    }
}
