namespace Presence.Agent.Simulation;

/// <summary>
/// When each simulated device heartbeats, in ticks of the run's <see cref="TimeProvider"/>: first heartbeats spread
/// evenly over the first interval (no thundering herd), then one per interval with jitter, on a fixed-rate schedule
/// (a heartbeat sent late does not push the next one back), with the silences of <see cref="ChurnModel"/>.
/// </summary>
internal sealed class FleetSchedule
{
    private readonly double _jitter;
    private readonly int _devices;

    public FleetSchedule(long frequency, double intervalSeconds, double jitter, ChurnModel churn, int devices)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(intervalSeconds);
        Frequency = frequency;
        IntervalSeconds = intervalSeconds;
        Interval = Math.Max(1, Ticks(intervalSeconds));
        Timeout = Ticks(churn.Timeout);
        Churn = churn;
        _jitter = Math.Clamp(jitter, 0, 0.5);
        _devices = devices;
    }

    public long Frequency { get; }

    public double IntervalSeconds { get; }

    /// <summary>The nominal time between two heartbeats of one device.</summary>
    public long Interval { get; }

    /// <summary>The gateway's <c>timeout_s</c>: a device whose last answered heartbeat is older is offline.</summary>
    public long Timeout { get; }

    public ChurnModel Churn { get; }

    /// <summary>Device <paramref name="device"/>'s first heartbeat: its own slot of the first interval.</summary>
    public long FirstDue(long start, long device, ref ulong random) =>
        start + (long)(Interval * ((device + Xorshift.Unit(ref random)) / _devices));

    /// <summary>
    /// The heartbeat after one that was due at <paramref name="due"/>: an interval later, with jitter; when that is
    /// already past (the run fell behind by more than an interval), now, without catching up on the missed ones.
    /// </summary>
    public long NextDue(long due, long now, ref ulong random)
    {
        var next = due + (long)(Interval * (1 + (_jitter * ((2 * Xorshift.Unit(ref random)) - 1))));
        return Math.Max(next, now);
    }

    /// <summary>Whether a device goes silent after an answered heartbeat (its first one, or a later one).</summary>
    public bool GoesSilent(bool first, ref ulong random) =>
        Churn.Churns && Xorshift.Unit(ref random) < (first ? Churn.FirstSilenceChance : Churn.SilenceChance);

    /// <summary>
    /// The heartbeat that ends a silence after the heartbeat due at <paramref name="due"/> (a device's
    /// <paramref name="first"/> one, or a later one): counted from the due time, like the next heartbeat would be, so
    /// a run that is a little behind keeps the churn's pace.
    /// </summary>
    public long SilenceEnd(long due, long now, bool first, ref ulong random)
    {
        var unit = Xorshift.Unit(ref random);
        return Math.Max(due + Ticks(first ? Churn.FirstSilence(unit) : Churn.Silence(unit)), now);
    }

    public long Ticks(double seconds) => (long)(seconds * Frequency);

    public double Seconds(long ticks) => ticks / (double)Frequency;

    /// <summary>A positive wait of at least <paramref name="ticks"/>, rounded up (a timer never ends a wait early then).</summary>
    public TimeSpan Delay(long ticks) =>
        TimeSpan.FromTicks(Math.Max(1, (long)Math.Ceiling(ticks * ((double)TimeSpan.TicksPerSecond / Frequency))));
}
