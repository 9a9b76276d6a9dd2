namespace Presence.Agent.Connection;

internal enum AttemptKind
{
    /// <summary>The gateway took the heartbeat (or, for a token request, issued the token).</summary>
    Accepted,

    /// <summary>429: wait <see cref="Attempt.RetryAfter"/>; not a loss of connectivity.</summary>
    RateLimited,

    /// <summary>503: the gateway is there but cannot serve now; wait <see cref="Attempt.RetryAfter"/>.</summary>
    Unavailable,

    /// <summary>401: the credentials were refused.</summary>
    Unauthorized,

    /// <summary>404: a gateway without the route (a token request outside device-token mode).</summary>
    NotFound,

    /// <summary>Any other refusal (403, 404, 422, ...).</summary>
    Refused,

    /// <summary>No answer: connection refused, reset, timed out, a broken channel.</summary>
    Unreachable,

    /// <summary>The device channel ended to be reopened at once: its token is due for renewal, or was revoked (4001).</summary>
    Reconnect,
}

/// <summary>The outcome of one exchange with the gateway. <see cref="Reason"/> is for the log: it never holds a credential.</summary>
internal readonly record struct Attempt(AttemptKind Kind, string Reason = "", TimeSpan? RetryAfter = null, TimeSpan? PollInterval = null)
{
    public static Attempt Accepted(TimeSpan? pollInterval) => new(AttemptKind.Accepted, PollInterval: pollInterval);

    public static Attempt Unreachable(string reason) => new(AttemptKind.Unreachable, reason);

    public bool IsAccepted => Kind == AttemptKind.Accepted;
}
