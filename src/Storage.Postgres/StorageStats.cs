using System.Diagnostics.Metrics;

namespace Presence.Storage.Postgres;

/// <summary>
/// What the store did: transactions, commits and rows per transaction, write-behind batches, and round trips to
/// PostgreSQL. Exported through the <c>Presence.Storage</c> meter and as a snapshot (benchmarks, logs).
/// </summary>
internal sealed class StorageStats : IDisposable
{
    private readonly Meter _meter = new("Presence.Storage");
    private readonly Counter<long> _roundTrips;
    private readonly Histogram<long> _commitsPerTransaction;
    private readonly Histogram<long> _writeBehindBatch;
    private long _roundTripCount, _transactions, _commits, _rows, _writeBehindBatches, _writeBehindRows;

    public StorageStats()
    {
        _roundTrips = _meter.CreateCounter<long>("presence.storage.round_trips", description: "Round trips to PostgreSQL by the writers");
        _commitsPerTransaction = _meter.CreateHistogram<long>("presence.storage.commits_per_transaction", description: "Partition commits in one durable transaction");
        _writeBehindBatch = _meter.CreateHistogram<long>("presence.storage.write_behind_batch", description: "Devices in one write-behind statement");
    }

    public void RoundTrip()
    {
        Interlocked.Increment(ref _roundTripCount);
        _roundTrips.Add(1);
    }

    public void Transaction(int commits, int rows)
    {
        Interlocked.Increment(ref _transactions);
        Interlocked.Add(ref _commits, commits);
        Interlocked.Add(ref _rows, rows);
        _commitsPerTransaction.Record(commits);
    }

    public void WriteBehind(int devices)
    {
        Interlocked.Increment(ref _writeBehindBatches);
        Interlocked.Add(ref _writeBehindRows, devices);
        _writeBehindBatch.Record(devices);
    }

    public StorageStatsSnapshot Snapshot() => new(
        Interlocked.Read(ref _roundTripCount), Interlocked.Read(ref _transactions), Interlocked.Read(ref _commits),
        Interlocked.Read(ref _rows), Interlocked.Read(ref _writeBehindBatches), Interlocked.Read(ref _writeBehindRows));

    public void Dispose() => _meter.Dispose();
}

public sealed record StorageStatsSnapshot(long RoundTrips, long Transactions, long Commits, long Rows, long WriteBehindBatches, long WriteBehindRows);
