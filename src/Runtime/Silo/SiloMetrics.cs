using System.Diagnostics.Metrics;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Silo;

/// <summary>Instruments of the <c>Presence.Silo</c> meter; hosts choose whether and where to export them.</summary>
internal sealed class SiloMetrics : IDisposable
{
    public const string MeterName = "Presence.Silo";

    /// <summary>Activities of the silo: one per storage commit of a partition turn.</summary>
    public static readonly System.Diagnostics.ActivitySource Activities = new(MeterName);

    private readonly Meter _meter;
    private readonly Counter<long> _commits;
    private readonly Counter<long> _events;
    private readonly Histogram<int> _batch;

    public SiloMetrics(IMeterFactory meters, Func<long> activations)
    {
        _meter = meters.Create(MeterName);
        _commits = _meter.CreateCounter<long>("presence.silo.commits", description: "Storage commits written by partition turns");
        _events = _meter.CreateCounter<long>("presence.silo.events", description: "Events appended to the event log");
        _batch = _meter.CreateHistogram<int>("presence.silo.commit.devices", description: "Device rows per commit");
        _meter.CreateObservableGauge("presence.silo.activations", activations, description: "Activated device grains");
    }

    public void Committed(PartitionCommit commit)
    {
        _commits.Add(1);
        _events.Add(commit.Events.Count);
        _batch.Record(commit.Upserts.Count);
    }

    public void Dispose() => _meter.Dispose();
}
