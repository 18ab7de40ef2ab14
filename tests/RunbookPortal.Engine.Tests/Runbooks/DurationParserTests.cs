using RunbookPortal.Engine.Runbooks;

namespace RunbookPortal.Engine.Tests.Runbooks;

public sealed class DurationParserTests
{
    [Theory]
    [InlineData("30s", 0, 0, 30, 0)]
    [InlineData("5m", 0, 5, 0, 0)]
    [InlineData("4h", 4, 0, 0, 0)]
    [InlineData("1h30m", 1, 30, 0, 0)]
    [InlineData("2d", 48, 0, 0, 0)]
    [InlineData("1d2h3m4s", 26, 3, 4, 0)]
    [InlineData("500ms", 0, 0, 0, 500)]
    [InlineData("1m500ms", 0, 1, 0, 500)]
    [InlineData("90m", 1, 30, 0, 0)]
    [InlineData("0s", 0, 0, 0, 0)]
    public void TryParse_ReadsDurations(string text, int hours, int minutes, int seconds, int milliseconds)
    {
        Assert.True(DurationParser.TryParse(text, out var value));
        Assert.Equal(new TimeSpan(0, hours, minutes, seconds, milliseconds), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("30")]
    [InlineData("s")]
    [InlineData("5 m")]
    [InlineData(" 5m")]
    [InlineData("5m ")]
    [InlineData("1h1h")]
    [InlineData("30m1h")]
    [InlineData("1.5h")]
    [InlineData("-5m")]
    [InlineData("+5m")]
    [InlineData("5M")]
    [InlineData("1w")]
    [InlineData("5 minutes")]
    [InlineData("5min")]
    [InlineData("PT5M")]
    [InlineData("9999999999999d")]
    [InlineData("999999999999d")]
    public void TryParse_RefusesEverythingElse(string? text)
    {
        Assert.False(DurationParser.TryParse(text, out var value));
        Assert.Equal(TimeSpan.Zero, value);
    }

    [Theory]
    [InlineData("30s")]
    [InlineData("1h30m")]
    [InlineData("2d")]
    [InlineData("1d2h3m4s5ms")]
    [InlineData("0s")]
    public void Format_WritesWhatTryParseReads(string text)
    {
        Assert.True(DurationParser.TryParse(text, out var value));
        Assert.Equal(text, DurationParser.Format(value));
    }

    [Fact]
    public void Format_NormalizesOverflowingUnits() =>
        Assert.Equal("1h30m", DurationParser.Format(TimeSpan.FromMinutes(90)));
}
