using Microsoft.Extensions.Logging;

namespace Presence.Agent.Connection;

/// <summary>
/// Decides the wait before the next heartbeat from the last outcome (the gateway's interval with jitter, its
/// <c>Retry-After</c>, or the backoff), tells <see cref="Connectivity"/>, and waits on the agent's <see cref="TimeProvider"/>.
/// </summary>
internal sealed class Pacer(TimeProvider time, Func<TimeSpan, TimeSpan> jitter, Connectivity connectivity, ILogger logger)
{
    /// <summary>The gateway's <c>poll_interval_s</c>, as last told.</summary>
    public TimeSpan Interval { get; private set; } = Pacing.DefaultInterval;

    public (TimeSpan Wait, string Why) Accepted(TimeSpan? pollInterval)
    {
        Interval = pollInterval ?? Interval;
        connectivity.Succeeded(Interval);
        return (jitter(Interval), "interval");
    }

    public (TimeSpan Wait, string Why) Failed(Attempt attempt)
    {
        if (attempt.Kind == AttemptKind.RateLimited)
        {
            var wait = Pacing.RetryAfter(attempt.RetryAfter ?? Interval);
            connectivity.RateLimited(wait);
            return (wait, "rate limited");
        }

        connectivity.Failed(attempt.Reason);
        return attempt is { Kind: AttemptKind.Unavailable, RetryAfter: { } retryAfter }
            ? (Pacing.RetryAfter(retryAfter), "retry after")
            : (jitter(Pacing.RetryDelay(connectivity.Failures)), "retry");
    }

    /// <summary>Starts the wait, then logs it (so its timer exists once the line is written); the caller awaits the task.</summary>
    public Task Delay(TimeSpan wait, string why, CancellationToken cancellationToken)
    {
        var delay = Task.Delay(wait < TimeSpan.Zero ? TimeSpan.Zero : wait, time, cancellationToken);
        AgentLog.NextHeartbeat(logger, Math.Round(wait.TotalSeconds, 3), why);
        return delay;
    }
}
