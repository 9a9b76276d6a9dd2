namespace Presence.Runtime.Storage;

/// <summary>
/// The silo cannot serve a call now, and the caller should retry later (the API's <c>503 UNAVAILABLE</c> with
/// <c>Retry-After</c>). Nothing the call asked for was made durable.
/// </summary>
public class UnavailableException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>How long a client should wait before retrying.</summary>
    public virtual TimeSpan RetryAfter => TimeSpan.FromSeconds(2);
}

/// <summary>Storage does not answer (an outage, or writes are buffered up to their bound).</summary>
public sealed class StorageUnavailableException(string message, Exception? inner = null) : UnavailableException(message, inner);

/// <summary>
/// A write carried a partition epoch older than the partition's current one: another process has taken the
/// partition over, and this one must not persist anything for it any more (fencing).
/// </summary>
public sealed class PartitionFencedException(int partition, long epoch)
    : UnavailableException($"partition {partition} was taken over (epoch {epoch} is stale)")
{
    public int Partition { get; } = partition;

    public long Epoch { get; } = epoch;
}
