using System.Globalization;
using System.Text;

namespace Presence.Agent.Simulation;

/// <summary>
/// What heartbeats of one period came to: their answers by HTTP status, their latencies, how many were sent late,
/// and the churn transitions. Fixed size and allocation-free to record into; not thread-safe (each connection owns
/// one and hands it over under its lock).
/// </summary>
internal sealed class HeartbeatTally
{
    /// <summary>Index 0 of <see cref="Status"/> counts heartbeats that got no answer (refused, reset or closed connections).</summary>
    public const int NoAnswer = 0;

    private const int StatusSlots = 600;

    public LatencyHistogram Latency { get; } = new();

    public long[] Status { get; } = new long[StatusSlots];

    /// <summary>Heartbeats sent more than <see cref="FleetConnection.LateAfter"/> after their due time.</summary>
    public long Late { get; set; }

    public long WentSilent { get; set; }

    public long CameBack { get; set; }

    /// <summary>Heartbeats sent, answered or not.</summary>
    public long Heartbeats
    {
        get
        {
            long sum = 0;
            foreach (var count in Status)
            {
                sum += count;
            }

            return sum;
        }
    }

    public long Ok => Status[200];

    public long Errors => Heartbeats - Ok;

    /// <summary>Counts one heartbeat: its status (or <see cref="NoAnswer"/>) and, when answered, its latency.</summary>
    public void Record(int status, long latencyTicks)
    {
        if (status is > NoAnswer and < StatusSlots)
        {
            Status[status]++;
            Latency.RecordTicks(latencyTicks);
        }
        else
        {
            Status[NoAnswer]++;
        }
    }

    public void Add(HeartbeatTally other)
    {
        Latency.Add(other.Latency);
        for (var i = 0; i < StatusSlots; i++)
        {
            Status[i] += other.Status[i];
        }

        Late += other.Late;
        WentSilent += other.WentSilent;
        CameBack += other.CameBack;
    }

    public void Clear()
    {
        Latency.Clear();
        Array.Clear(Status);
        Late = 0;
        WentSilent = 0;
        CameBack = 0;
    }

    /// <summary>The errors by status, <c>conn</c> always last and always present: <c>429=3 503=1 conn=0</c>.</summary>
    public string ErrorsText()
    {
        var text = new StringBuilder();
        for (var status = 1; status < StatusSlots; status++)
        {
            if (status != 200 && Status[status] > 0)
            {
                text.Append(CultureInfo.InvariantCulture, $"{status}={Status[status]} ");
            }
        }

        return text.Append(CultureInfo.InvariantCulture, $"conn={Status[NoAnswer]}").ToString();
    }
}
