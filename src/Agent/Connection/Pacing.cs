namespace Presence.Agent.Connection;

/// <summary>How long the agent waits: the gateway's interval with jitter, or backoff 1 s, 3 s, 9 s, then every 30 s.</summary>
internal static class Pacing
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan[] Backoff = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(9)];
    private static readonly TimeSpan SteadyRetry = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan MinRetryAfter = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan MaxRetryAfter = TimeSpan.FromMinutes(10);

    /// <summary>The wait after the <paramref name="failures"/>-th failure in a row (1-based).</summary>
    public static TimeSpan RetryDelay(int failures) => failures >= 1 && failures <= Backoff.Length ? Backoff[failures - 1] : SteadyRetry;

    /// <summary>The gateway's <c>Retry-After</c>, kept within 1 s ... 10 min.</summary>
    public static TimeSpan RetryAfter(TimeSpan value) =>
        value < MinRetryAfter ? MinRetryAfter : value > MaxRetryAfter ? MaxRetryAfter : value;

    /// <summary>+-10 %: a fleet restarted together (or reconnecting after a gateway restart) spreads out instead of beating in step.</summary>
    public static TimeSpan TenPercentJitter(TimeSpan delay) => delay * (0.9 + (0.2 * Random.Shared.NextDouble()));
}
