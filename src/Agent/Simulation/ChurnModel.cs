namespace Presence.Agent.Simulation;

/// <summary>
/// How devices go silent and come back so that, in steady state, <c>--churn PCT</c> percent of the fleet is offline
/// at the gateway at any moment, and the offline set keeps changing.
/// <para>
/// A device alternates between an active spell (heartbeats every interval) and a silence. After each heartbeat it
/// goes silent with probability <see cref="SilenceChance"/>, so an active spell lasts a geometric number of
/// heartbeats. A silence lasts <c>timeout_s</c> (the gateway still counts the device online) plus an offline part
/// drawn uniformly from 0.5-1.5 times <see cref="MeanOffline"/>; then the device heartbeats again (a new session).
/// The offline part is <c>timeout_s</c> on average, longer when PCT is above 50 (an active spell cannot be shorter
/// than one heartbeat). PCT above 95 acts as 95: a fleet that never comes back does not churn.
/// </para>
/// <para>
/// Every device sends its first heartbeat (it registers). Right after it, a share PCT of the devices starts a silence
/// whose offline part is a uniform draw from 0 to <see cref="MeanOffline"/> (what remains of a steady-state offline
/// spell): those go offline one timeout after starting and come back spread out while the other devices' silences
/// take over, so the fleet is at its steady state from about one <c>timeout_s</c> after the start, without a wave.
/// </para>
/// </summary>
internal sealed class ChurnModel
{
    public const double MaxShare = 0.95;

    private ChurnModel(double share, double interval, double timeout, double meanOffline, double activeSpan)
    {
        Share = share;
        Interval = interval;
        Timeout = timeout;
        MeanOffline = meanOffline;
        ActiveSpan = activeSpan;
        SilenceChance = share == 0 ? 0 : 1 / (1 + (activeSpan / interval));
        FirstSilenceChance = share;
    }

    /// <summary>The target share of the fleet offline at the gateway (0-0.95).</summary>
    public double Share { get; }

    /// <summary>The chance that a device goes silent after a heartbeat.</summary>
    public double SilenceChance { get; }

    /// <summary>The chance that a device goes silent after its first heartbeat.</summary>
    public double FirstSilenceChance { get; }

    /// <summary>The gateway's <c>timeout_s</c>, seconds.</summary>
    public double Timeout { get; }

    /// <summary>The mean offline part of a silence, seconds.</summary>
    public double MeanOffline { get; }

    /// <summary>Seconds between two heartbeats of an active device.</summary>
    public double Interval { get; }

    /// <summary>The mean time from a device's heartbeat after a silence to its last one before the next silence, seconds.</summary>
    public double ActiveSpan { get; }

    /// <summary>The mean time from one silence's start to the next one's, seconds.</summary>
    public double Cycle => ActiveSpan + Timeout + MeanOffline;

    public bool Churns => Share > 0;

    /// <param name="percent">--churn, 0-100.</param>
    /// <param name="interval">seconds between two heartbeats of one device.</param>
    /// <param name="timeout">the gateway's <c>timeout_s</c>.</param>
    public static ChurnModel For(double percent, double interval, double timeout)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(interval);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(timeout);
        var share = Math.Clamp(percent / 100, 0, MaxShare);
        if (share == 0)
        {
            return new ChurnModel(0, interval, timeout, 0, 0);
        }

        // Offline share = D / (A + T + D) for an active span A (between coming back and the last heartbeat before the
        // next silence), a silence T + D. With D = T that gives A = T/p - 2T, which is negative above p = 0.5: there
        // A = 0 (one heartbeat) and D = T p / (1 - p) instead.
        var offline = timeout * Math.Max(1, share / (1 - share));
        var active = Math.Max(0, (offline / share) - timeout - offline);
        return new ChurnModel(share, interval, timeout, offline, active);
    }

    /// <summary>
    /// The interval between two heartbeats of an active device at which <paramref name="devices"/> send
    /// <paramref name="rate"/> heartbeats per second in all, silences included, or null when churn alone decides
    /// the rate: from PCT 50 up a device heartbeats once per cycle (the interval never comes into it), and a rate
    /// below one heartbeat per device and cycle cannot be met.
    /// </summary>
    public double? IntervalFor(double rate, int devices)
    {
        if (!Churns)
        {
            return devices / rate;
        }

        // A spell of 1 + A/I heartbeats per cycle C: rate = N (1 + A/I) / C.
        var extra = (rate * Cycle / devices) - 1;
        return ActiveSpan > 0 && extra > 0 ? ActiveSpan / extra : null;
    }

    /// <summary>Heartbeats per second of <paramref name="devices"/> in steady state.</summary>
    public double RateOf(int devices) => Churns ? devices * (1 + (ActiveSpan / Interval)) / Cycle : devices / Interval;

    /// <summary>A silence's length in seconds, from a uniform draw <paramref name="unit"/> in [0, 1).</summary>
    public double Silence(double unit) => Timeout + (MeanOffline * (0.5 + unit));

    /// <summary>The length of a silence right after a device's first heartbeat, from a uniform draw in [0, 1).</summary>
    public double FirstSilence(double unit) => Timeout + (MeanOffline * unit);
}
