namespace RunbookPortal.Web.Components.Shared;

/// <summary>A moment as people say it relative to now, to the nearest minute: "in 3 h", "in 25 min", "2 h 5 min ago".</summary>
public static class RelativeTime
{
    public static string From(DateTime moment, DateTime now)
    {
        var span = moment - now;
        var minutes = (long)Math.Round(Math.Abs(span.TotalMinutes), MidpointRounding.AwayFromZero);
        var amount = minutes switch
        {
            < 1 => "less than a minute",
            < 60 => $"{minutes} min",
            < 48 * 60 => minutes % 60 == 0 || minutes >= 10 * 60 ? $"{(long)Math.Round(minutes / 60.0, MidpointRounding.AwayFromZero)} h" : $"{minutes / 60} h {minutes % 60} min",
            _ => $"{(long)Math.Round(minutes / (24 * 60.0), MidpointRounding.AwayFromZero)} days",
        };
        return span >= TimeSpan.Zero ? $"in {amount}" : $"{amount} ago";
    }
}
