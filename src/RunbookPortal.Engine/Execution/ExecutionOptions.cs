using System.ComponentModel.DataAnnotations;

namespace RunbookPortal.Engine.Execution;

/// <summary>
/// How the runner runs steps; one instance per node. The attributes are the allowed ranges: the runner refuses options
/// outside them, and a host checks them when it reads its configuration.
/// </summary>
public sealed class ExecutionOptions
{
    /// <summary>1 MiB.</summary>
    public const int DefaultMaxOutputBytesPerStep = 1024 * 1024;

    /// <summary>64 MiB: what is kept of a step's output is held in memory and checked with regular expressions.</summary>
    public const int MostOutputBytesPerStep = 64 * 1024 * 1024;

    /// <summary>
    /// The most output (UTF-8 bytes) recorded for one attempt of a step; past it a marker line and a
    /// <see cref="StepOutputTruncated"/> event say the rest was not recorded (the process still runs to its end).
    /// </summary>
    [Range(1024, MostOutputBytesPerStep)]
    public int MaxOutputBytesPerStep { get; set; } = DefaultMaxOutputBytesPerStep;

    /// <summary>
    /// Retry pauses are <c>backoff × 2^(attempt-1)</c> lengthened by a random part of up to this fraction, so
    /// runs that fail together do not retry in lockstep. 0 turns jitter off.
    /// </summary>
    [Range(0.0, 1.0)]
    public double RetryJitterFraction { get; set; } = 0.2;

    /// <summary>The longest pause between two attempts, whatever the backoff says.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "1.00:00:00")]
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// The timeout of every step and rollback that has no <c>timeout</c> of its own (a <c>wait</c> step's duration is its
    /// own limit, a <c>manual</c> step waits for a person).
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan DefaultStepTimeout { get; set; } = TimeSpan.FromHours(1);

    /// <summary>The longest one regular expression (validate <c>regex</c>, <c>outputs</c>) may take on a step's output.</summary>
    [Range(typeof(TimeSpan), "00:00:00.010", "00:01:00")]
    public TimeSpan RegexTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The longest span a timer takes (about 49 days); longer timeouts, waits and pauses are cut to it.</summary>
    public static TimeSpan MaxTimer { get; } = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    /// <summary><paramref name="span"/>, or <see cref="MaxTimer"/> when it is longer.</summary>
    public static TimeSpan ClampTimer(TimeSpan span) => span > MaxTimer ? MaxTimer : span;
}
