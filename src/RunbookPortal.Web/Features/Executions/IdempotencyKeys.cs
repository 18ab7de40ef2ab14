using RunbookPortal.Web.Data;

namespace RunbookPortal.Web.Features.Executions;

/// <summary>
/// The <c>Idempotency-Key</c> header of a start: a client's name for one request, so that a retry (after a timeout,
/// say) answers the execution the first try started instead of starting a second one.
/// </summary>
public static class IdempotencyKeys
{
    public const string Header = "Idempotency-Key";

    /// <summary>Tells the client that the answer is the execution an earlier request with its key started.</summary>
    public const string ReplayedHeader = "Idempotent-Replayed";

    /// <summary>How long a key stands for its request; after that the same key starts a new execution.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromHours(24);

    /// <summary>Why <paramref name="key"/> cannot be used, as a sentence for a person; null when it can.</summary>
    public static string? Problem(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (string.IsNullOrWhiteSpace(key))
            return $"The {Header} header is empty. Send a text that names this request (a UUID, say), or leave the header out.";
        if (key.Length > Execution.MaxIdempotencyKeyLength)
            return $"The {Header} is {key.Length} characters long; it may have at most {Execution.MaxIdempotencyKeyLength}.";
        var bad = key.AsSpan().IndexOfAnyExceptInRange(' ', '~');
        if (bad >= 0)
            return $"The {Header} may only hold printable ASCII characters (letters, digits, punctuation and spaces); character {bad + 1} is U+{(int)key[bad]:X4}.";
        return null;
    }
}
