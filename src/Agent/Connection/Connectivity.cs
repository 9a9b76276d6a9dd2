using Microsoft.Extensions.Logging;

namespace Presence.Agent.Connection;

/// <summary>
/// Whether the gateway is reachable, as the log tells it: one line when the agent first connects, one when it loses
/// the gateway (or cannot reach it at start), one when it is back; the attempts in between only at Debug.
/// </summary>
internal sealed class Connectivity(ILogger logger, TimeProvider time)
{
    private bool _everConnected;
    private bool _down;
    private bool _rateLimited;
    private long _downSince;
    private TimeSpan? _interval;

    /// <summary>Failed attempts since the last success.</summary>
    public int Failures { get; private set; }

    public void Succeeded(TimeSpan interval)
    {
        if (!_everConnected)
        {
            AgentLog.Connected(logger, interval.TotalSeconds);
        }
        else if (_down)
        {
            AgentLog.Restored(logger, Failures, time.GetElapsedTime(_downSince).TotalSeconds);
        }
        else if (_interval != interval)
        {
            AgentLog.IntervalChanged(logger, interval.TotalSeconds);
        }

        AgentLog.HeartbeatAccepted(logger);
        _everConnected = true;
        _down = false;
        _rateLimited = false;
        _interval = interval;
        Failures = 0;
    }

    public void Failed(string reason)
    {
        Failures++;
        AgentLog.AttemptFailed(logger, Failures, reason);
        if (_down)
        {
            return;
        }

        _down = true;
        _downSince = time.GetTimestamp();
        if (_everConnected)
        {
            AgentLog.Lost(logger, reason);
        }
        else
        {
            AgentLog.Unreachable(logger, reason);
        }
    }

    /// <summary>A 429: logged once until the next accepted heartbeat.</summary>
    public void RateLimited(TimeSpan wait)
    {
        if (!_rateLimited)
        {
            _rateLimited = true;
            AgentLog.RateLimited(logger, wait.TotalSeconds);
        }
    }
}
