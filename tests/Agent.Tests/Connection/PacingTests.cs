using Presence.Agent.Connection;

namespace Presence.Agent.Tests.Connection;

public sealed class PacingTests
{
    [Fact]
    public void Backoff_is_1_3_9_then_30_seconds()
    {
        Assert.Equal([1, 3, 9, 30, 30, 30], Enumerable.Range(1, 6).Select(n => Pacing.RetryDelay(n).TotalSeconds));
    }

    [Fact]
    public void Jitter_stays_within_ten_percent_and_varies()
    {
        var samples = Enumerable.Range(0, 1000).Select(_ => Pacing.TenPercentJitter(TimeSpan.FromSeconds(30)).TotalSeconds).ToList();

        Assert.All(samples, s => Assert.InRange(s, 27, 33));
        Assert.True(samples.Max() - samples.Min() > 3, "jitter should spread a fleet over most of its range");
    }

    [Theory]
    [InlineData(0, 1)]
    [InlineData(7, 7)]
    [InlineData(86400, 600)]
    public void Retry_After_is_kept_between_1_second_and_10_minutes(double seconds, double expected)
    {
        Assert.Equal(expected, Pacing.RetryAfter(TimeSpan.FromSeconds(seconds)).TotalSeconds);
    }
}
