namespace Presence.Grains.Abstractions;

/// <summary>
/// The durable state of one device: everything the API's <c>Device</c> shows. Immutable; a grain replaces it on
/// every change, and storage keeps the same instance, so memory holds one copy per device.
/// </summary>
public sealed record DeviceRecord
{
    public required string TenantId { get; init; }
    public required string DeviceId { get; init; }
    public required string DeviceName { get; init; }
    public string? Platform { get; init; }
    public string? AppVersion { get; init; }
    public DeviceStatus Status { get; init; }
    public DateTime FirstSeenAt { get; init; }
    public DateTime LastSeenAt { get; init; }
    public DateTime StatusChangedAt { get; init; }

    /// <summary>Current (online) or last session; 0 before the first session.</summary>
    public long SessionId { get; init; }
    public DateTime SessionStartedAt { get; init; }
    public long SessionHeartbeats { get; init; }

    public MetricSet Metrics { get; init; } = MetricSet.Empty;
    public IReadOnlyList<ContainerInfo> Containers { get; init; } = [];
    public IReadOnlyDictionary<string, string> Labels { get; init; } = NoLabels;

    /// <summary>Per-device timeout; <see cref="TimeSpan.Zero"/> means the configured default.</summary>
    public TimeSpan Timeout { get; init; }

    /// <summary>+1 per state change (every accepted heartbeat is one).</summary>
    public long Version { get; init; }

    /// <summary>Sequence number of the device's last event.</summary>
    public long Sequence { get; init; }

    /// <summary>The device's secret (hashed) and the stamp its tokens carry; null for a device that has none.</summary>
    public DeviceCredential? Credential { get; init; }

    /// <summary>False for a provisioned device that has not sent a heartbeat yet: it has no <c>last_seen_at</c>.</summary>
    public bool HasBeenSeen => SessionId != 0;

    public DeviceKey Key => new(TenantId, DeviceId);

    /// <summary>The labels of a device that has none (shared).</summary>
    public static readonly IReadOnlyDictionary<string, string> NoLabels = new Dictionary<string, string>();
}

/// <summary>
/// A device's secret, stored only as a slow hash (<see cref="Hash"/>: the KDF's parameters, salt and output), and the
/// random stamp its tokens carry: a new secret gets a new stamp, so tokens issued for the old one stop working.
/// </summary>
public sealed record DeviceCredential(long Stamp, byte[] Hash);
