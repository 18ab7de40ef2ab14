using System.Globalization;
using System.Text;

namespace RunbookPortal.Engine.Runbooks;

/// <summary>
/// Durations as runbooks write them: one or more <c>number+unit</c> parts from largest to smallest unit,
/// each unit at most once: <c>d</c>, <c>h</c>, <c>m</c>, <c>s</c>, <c>ms</c>. Examples: <c>30s</c>, <c>5m</c>,
/// <c>4h</c>, <c>1h30m</c>, <c>2d</c>, <c>500ms</c>. No spaces, no signs, no fractions.
/// </summary>
public static class DurationParser
{
    private static readonly (string Unit, long Ticks)[] Units =
    [
        ("d", TimeSpan.TicksPerDay),
        ("h", TimeSpan.TicksPerHour),
        ("m", TimeSpan.TicksPerMinute),
        ("s", TimeSpan.TicksPerSecond),
        ("ms", TimeSpan.TicksPerMillisecond),
    ];

    /// <summary>A short description of the format for messages.</summary>
    public const string FormatHint = "a duration such as 30s, 5m, 1h30m or 2d";

    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        if (string.IsNullOrEmpty(text))
            return false;
        var span = text.AsSpan();

        long ticks = 0;
        var nextUnit = 0; // index into Units of the smallest unit still allowed
        var position = 0;
        while (position < span.Length)
        {
            var digitsStart = position;
            while (position < span.Length && span[position] is >= '0' and <= '9')
                position++;
            var digits = span[digitsStart..position];
            if (digits.IsEmpty || digits.Length > 12)
                return false;

            var unitStart = position;
            while (position < span.Length && span[position] is >= 'a' and <= 'z')
                position++;
            var unit = span[unitStart..position];

            var unitIndex = -1;
            for (var i = nextUnit; i < Units.Length; i++)
            {
                if (unit.SequenceEqual(Units[i].Unit))
                {
                    unitIndex = i;
                    break;
                }
            }
            if (unitIndex < 0)
                return false;
            nextUnit = unitIndex + 1;

            var number = long.Parse(digits, NumberStyles.None, CultureInfo.InvariantCulture);
            try
            {
                ticks = checked(ticks + checked(number * Units[unitIndex].Ticks));
            }
            catch (OverflowException)
            {
                return false;
            }
        }

        value = TimeSpan.FromTicks(ticks);
        return true;
    }

    /// <summary>Writes a duration the way <see cref="TryParse"/> reads it (<c>1h30m</c>); zero is <c>0s</c>.</summary>
    public static string Format(TimeSpan value)
    {
        if (value < TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(value), "durations are not negative");
        if (value == TimeSpan.Zero)
            return "0s";
        var builder = new StringBuilder();
        var ticks = value.Ticks;
        foreach (var (unit, unitTicks) in Units)
        {
            var count = ticks / unitTicks;
            if (count > 0)
            {
                builder.Append(count.ToString(CultureInfo.InvariantCulture)).Append(unit);
                ticks -= count * unitTicks;
            }
        }
        return builder.Length == 0 ? "0s" : builder.ToString();
    }
}
