using System.Net.Sockets;
using Npgsql;
using NpgsqlTypes;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>Tells an outage (the database is away or refusing work) from a bug, and phrases it for callers.</summary>
internal static class PostgresErrors
{
    /// <summary>SQLSTATE raised by <c>presence_fence</c>.</summary>
    public const string StaleEpoch = "PR001";

    public static bool IsOutage(Exception error) => error switch
    {
        PostgresException { SqlState: StaleEpoch } => false,
        PostgresException e => e.IsTransient
            || e.SqlState.StartsWith("08", StringComparison.Ordinal) // connection exceptions
            || e.SqlState.StartsWith("57", StringComparison.Ordinal) // operator intervention: shutdown, crash
            || e.SqlState.StartsWith("53", StringComparison.Ordinal), // insufficient resources
        NpgsqlException => true, // I/O: the connection broke or could not be opened
        SocketException or IOException or TimeoutException => true,
        _ => false,
    };

    /// <summary>
    /// The first statement of every writing transaction: locks the partitions' lease rows and raises
    /// <see cref="StaleEpoch"/> (listing them in the detail) if any epoch is no longer current.
    /// </summary>
    public static NpgsqlBatchCommand Fence(IEnumerable<(int Partition, long Epoch)> owners)
    {
        var rows = owners.ToList();
        var fence = new NpgsqlBatchCommand("SELECT presence_fence(@parts, @epochs)");
        fence.Parameters.Add(new NpgsqlParameter<int[]>("parts", NpgsqlDbType.Array | NpgsqlDbType.Integer) { TypedValue = rows.Select(r => r.Partition).ToArray() });
        fence.Parameters.Add(new NpgsqlParameter<long[]>("epochs", NpgsqlDbType.Array | NpgsqlDbType.Bigint) { TypedValue = rows.Select(r => r.Epoch).ToArray() });
        return fence;
    }

    /// <summary>The stale partitions a <see cref="StaleEpoch"/> error lists after the colon of its message (Npgsql redacts details).</summary>
    public static HashSet<int> StalePartitions(PostgresException error) =>
        error.MessageText[(error.MessageText.LastIndexOf(':') + 1)..]
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(part => int.Parse(part, System.Globalization.CultureInfo.InvariantCulture))
            .ToHashSet();

    /// <summary>The exception callers see; the message names no host, SQL or credentials.</summary>
    public static StorageUnavailableException Unavailable(Exception error) =>
        new("storage is unavailable; retry later", error);
}

/// <summary>Exponential backoff for reconnecting: 0.1 s doubling to 5 s, with jitter.</summary>
internal sealed class Backoff
{
    private static readonly TimeSpan First = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Max = TimeSpan.FromSeconds(5);
    private TimeSpan _next = First;

    public TimeSpan Next()
    {
        var delay = _next * (0.8 + (Random.Shared.NextDouble() * 0.4));
        _next = _next * 2 > Max ? Max : _next * 2;
        return delay;
    }

    public void Reset() => _next = First;
}
