namespace Presence.Runtime.Cluster;

/// <summary>A silo's membership status (stored as its number: never renumber).</summary>
public enum SiloStatus : short
{
    /// <summary>Registered, taking its first partitions.</summary>
    Joining = 0,

    /// <summary>Serving and renewing its leases.</summary>
    Active = 1,

    /// <summary>Draining: handing its partitions off before it exits; no partition targets it.</summary>
    Leaving = 2,

    /// <summary>Exited, or declared dead because its row went stale.</summary>
    Dead = 3,
}

/// <summary>One row of the membership table.</summary>
public sealed record SiloEntry(
    string SiloId, string Address, long Generation, SiloStatus Status, DateTime StartedAt, DateTime LastHeartbeatAt, long Devices)
{
    /// <summary>May own partitions: joining or active, and its row was refreshed within the silo timeout.</summary>
    public bool IsLive(DateTime now, TimeSpan siloTimeout) =>
        Status is SiloStatus.Joining or SiloStatus.Active && LastHeartbeatAt >= now - siloTimeout;

    public static string StatusName(SiloStatus status) => status switch
    {
        SiloStatus.Joining => "joining",
        SiloStatus.Active => "active",
        SiloStatus.Leaving => "leaving",
        _ => "dead",
    };
}

/// <summary>A partition's lease row: its owner (null when free), the epoch every write carries, and when the lease ends.</summary>
public readonly record struct PartitionLease(int Partition, string? Owner, long Epoch, DateTime? ExpiresAt)
{
    /// <summary>
    /// Free (released, or claimed without a lease by an embedded process), or its owner stopped renewing: another silo
    /// may acquire it.
    /// </summary>
    public bool IsAcquirable(DateTime now) => ExpiresAt is not { } expires || expires < now;
}

/// <summary>A partition this silo acquired, at its new epoch.</summary>
public readonly record struct AcquiredPartition(int Partition, long Epoch);

/// <summary>The membership table and every partition's lease, read together.</summary>
public sealed record ClusterView(IReadOnlyList<SiloEntry> Silos, IReadOnlyList<PartitionLease> Partitions)
{
    /// <summary>Partitions with no live owner (free, expired, or owned by a silo that is not live).</summary>
    public int Unowned(DateTime now, TimeSpan siloTimeout)
    {
        var live = Silos.Where(s => s.IsLive(now, siloTimeout) || s.Status == SiloStatus.Leaving && s.LastHeartbeatAt >= now - siloTimeout)
            .Select(s => s.SiloId).ToHashSet(StringComparer.Ordinal);
        return Partitions.Count(p => p.Owner is null || !live.Contains(p.Owner) || p.IsAcquirable(now));
    }
}

/// <summary>
/// Membership and partition leases, kept in storage whose transactions are the only agreement between processes.
/// Times are the caller's clock (its <see cref="TimeProvider"/>): hosts of one cluster need synchronised clocks
/// (skew well below the lease). Safety does not depend on clocks: every write is fenced by the partition epoch.
/// </summary>
public interface IMembershipStore
{
    /// <summary>Registers this silo (a new row; silo ids are never reused).</summary>
    Task JoinAsync(SiloEntry silo, CancellationToken cancellationToken);

    /// <summary>
    /// Refreshes this silo's row with <paramref name="status"/> and its device count; returns the status the row had
    /// (<see cref="SiloStatus.Dead"/> when another silo declared it dead meanwhile), or null when the row is gone.
    /// </summary>
    Task<SiloStatus?> HeartbeatAsync(string siloId, SiloStatus status, long devices, DateTime now, CancellationToken cancellationToken);

    /// <summary>Declares dead, with one conditional update, every silo whose row is older than <paramref name="staleBefore"/>; returns their ids.</summary>
    Task<IReadOnlyList<string>> DeclareDeadAsync(DateTime staleBefore, CancellationToken cancellationToken);

    /// <summary>Extends every lease <paramref name="siloId"/> holds to <paramref name="until"/>, in one statement; returns them (partition to epoch).</summary>
    Task<IReadOnlyDictionary<int, long>> RenewAsync(string siloId, DateTime until, CancellationToken cancellationToken);

    /// <summary>
    /// Takes those of <paramref name="partitions"/> that are free or expired (skipping any a writer holds locked), each
    /// at a new epoch that fences off the previous owner's writes.
    /// </summary>
    Task<IReadOnlyList<AcquiredPartition>> AcquireAsync(string siloId, IReadOnlyCollection<int> partitions, DateTime now, DateTime until, CancellationToken cancellationToken);

    /// <summary>Frees partitions this silo still owns at the given epochs (after flushing them), so their target can take them at once.</summary>
    Task ReleaseAsync(string siloId, IReadOnlyCollection<AcquiredPartition> partitions, CancellationToken cancellationToken);

    Task<ClusterView> ReadAsync(CancellationToken cancellationToken);
}
