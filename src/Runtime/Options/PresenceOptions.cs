using Microsoft.Extensions.Options;

namespace Presence.Runtime.Options;

/// <summary><c>Presence:Heartbeat</c>: how devices are told to heartbeat and when silence means offline.</summary>
public sealed class HeartbeatOptions
{
    public const string Section = "Presence:Heartbeat";
    public double IntervalSeconds { get; set; } = 30;
    public double TimeoutSeconds { get; set; } = 90;
    public double DisconnectGraceSeconds { get; set; } = 5;
}

/// <summary><c>Presence:Storage</c>: where device state, sessions and events are kept.</summary>
public sealed class StorageOptions
{
    public const string Section = "Presence:Storage";
    public const string Memory = "memory";
    public const string Postgres = "postgres";
    public string Provider { get; set; } = Memory;
    public double FlushIntervalSeconds { get; set; } = 1;

    /// <summary>Ended presence sessions older than this are deleted by housekeeping.</summary>
    public double SessionRetentionDays { get; set; } = 90;

    /// <summary>How often housekeeping (event and session retention, deleting silent devices) runs.</summary>
    public double HousekeepingIntervalMinutes { get; set; } = 10;
}

/// <summary><c>Presence:Devices</c>.</summary>
public sealed class DevicesOptions
{
    public const string Section = "Presence:Devices";

    /// <summary>Offline devices not seen for this many days are removed by housekeeping; 0 keeps them forever.</summary>
    public double DeleteAfterDays { get; set; }
}

/// <summary><c>Presence:Events</c>: how far back a cursor can resume, and when a reader is too slow.</summary>
public sealed class EventsOptions
{
    public const string Section = "Presence:Events";

    /// <summary>Events kept by the in-memory log (with <c>postgres</c>: the recent events also held in memory).</summary>
    public int Retention { get; set; } = 100_000;

    /// <summary>With <c>postgres</c>: events older than this are deleted; a cursor before them is expired.</summary>
    public double RetentionHours { get; set; } = 168;

    /// <summary>Events a WebSocket subscriber may fall behind the log's head before it is closed with 4008.</summary>
    public int MaxSubscriberLag { get; set; } = 20_000;
}

/// <summary><c>Presence:RateLimit</c>.</summary>
public sealed class RateLimitOptions
{
    public const string Section = "Presence:RateLimit";
    public int HeartbeatsPerMinute { get; set; } = 120;
}

/// <summary><c>Presence:Cluster</c>.</summary>
public sealed class ClusterOptions
{
    public const string Section = "Presence:Cluster";
    public const string Embedded = "embedded";
    public const string Client = "client";
    public int Partitions { get; set; } = 1024;

    /// <summary>Gateways: <c>embedded</c> hosts a silo owning every partition; <c>client</c> routes to the cluster's silos.</summary>
    public string Mode { get; set; } = Embedded;

    /// <summary>How often a silo refreshes its membership row and renews its leases, and a gateway re-reads the partition map.</summary>
    public double MembershipIntervalSeconds { get; set; } = 1;

    /// <summary>A silo whose row is older than this is no longer live (its partitions are re-targeted) and is declared dead.</summary>
    public double SiloTimeoutSeconds { get; set; } = 5;

    /// <summary>How long a renewed lease lasts: a crashed silo's partitions can be taken over once it ends.</summary>
    public double LeaseSeconds { get; set; } = 5;

    /// <summary>Partitions a silo hands off per membership round when another silo joins (a drain hands off all at once).</summary>
    public int HandOffBatch { get; set; } = 128;

    /// <summary>Gateways: how long a grain call waits for a reachable owner before answering 503.</summary>
    public double RouteTimeoutSeconds { get; set; } = 10;

    /// <summary>Shared by silos and gateways: a gateway must present it to a silo. Required when a silo listens beyond loopback.</summary>
    public string? Secret { get; set; }
}

/// <summary><c>Presence:Silo</c>: runtime tuning; defaults suit production.</summary>
public sealed class SiloOptions
{
    public const string Section = "Presence:Silo";

    /// <summary>Timing wheel resolution: offline events are at most about one tick late.</summary>
    public int TimerTickMilliseconds { get; set; } = 250;

    /// <summary>Idle offline grains are deactivated (their state stays in storage) after this long.</summary>
    public double CollectionAgeSeconds { get; set; } = 120;

    /// <summary>Silo processes: where gateways connect (<c>host:port</c>; port 0 picks a free one).</summary>
    public string Endpoint { get; set; } = "127.0.0.1:0";

    /// <summary>The host advertised in the membership table instead of the bound one (containers, NAT).</summary>
    public string? AdvertisedHost { get; set; }
}

/// <summary>Checks every Presence option; each message names the configuration key it is about.</summary>
internal sealed class PresenceOptionsValidator :
    IValidateOptions<HeartbeatOptions>, IValidateOptions<StorageOptions>, IValidateOptions<EventsOptions>,
    IValidateOptions<RateLimitOptions>, IValidateOptions<ClusterOptions>, IValidateOptions<SiloOptions>, IValidateOptions<DevicesOptions>
{
    public ValidateOptionsResult Validate(string? name, HeartbeatOptions o) => Collect(
        Positive(HeartbeatOptions.Section, "IntervalSeconds", o.IntervalSeconds, 86_400),
        Positive(HeartbeatOptions.Section, "TimeoutSeconds", o.TimeoutSeconds, 86_400),
        Positive(HeartbeatOptions.Section, "DisconnectGraceSeconds", o.DisconnectGraceSeconds, 86_400));

    public ValidateOptionsResult Validate(string? name, StorageOptions o) => Collect(
        o.Provider is StorageOptions.Memory or StorageOptions.Postgres ? null
            : $"{StorageOptions.Section}:Provider must be 'memory' or 'postgres' (got '{o.Provider}')",
        Positive(StorageOptions.Section, "FlushIntervalSeconds", o.FlushIntervalSeconds, 3_600),
        Positive(StorageOptions.Section, "SessionRetentionDays", o.SessionRetentionDays, 36_500),
        Positive(StorageOptions.Section, "HousekeepingIntervalMinutes", o.HousekeepingIntervalMinutes, 10_080));

    public ValidateOptionsResult Validate(string? name, DevicesOptions o) => Collect(
        double.IsFinite(o.DeleteAfterDays) && o.DeleteAfterDays >= 0 && o.DeleteAfterDays <= 36_500 ? null
            : $"{DevicesOptions.Section}:DeleteAfterDays must be 0 (never) or a number of days up to 36500 (got {o.DeleteAfterDays})");

    public ValidateOptionsResult Validate(string? name, EventsOptions o) => Collect(
        Range(EventsOptions.Section, "Retention", o.Retention, 100, 50_000_000),
        Range(EventsOptions.Section, "MaxSubscriberLag", o.MaxSubscriberLag, 10, 50_000_000),
        Positive(EventsOptions.Section, "RetentionHours", o.RetentionHours, 87_600));

    public ValidateOptionsResult Validate(string? name, RateLimitOptions o) =>
        Collect(Range(RateLimitOptions.Section, "HeartbeatsPerMinute", o.HeartbeatsPerMinute, 1, 1_000_000));

    public ValidateOptionsResult Validate(string? name, ClusterOptions o) => Collect(
        Range(ClusterOptions.Section, "Partitions", o.Partitions, 1, 65_536),
        o.Mode is ClusterOptions.Embedded or ClusterOptions.Client ? null
            : $"{ClusterOptions.Section}:Mode must be 'embedded' or 'client' (got '{o.Mode}')",
        Positive(ClusterOptions.Section, "MembershipIntervalSeconds", o.MembershipIntervalSeconds, 60),
        Positive(ClusterOptions.Section, "SiloTimeoutSeconds", o.SiloTimeoutSeconds, 600),
        Positive(ClusterOptions.Section, "LeaseSeconds", o.LeaseSeconds, 600),
        Positive(ClusterOptions.Section, "RouteTimeoutSeconds", o.RouteTimeoutSeconds, 600),
        Range(ClusterOptions.Section, "HandOffBatch", o.HandOffBatch, 1, 65_536),
        // A lease must survive a missed round or two, and a live silo must not look stale between its refreshes.
        o.LeaseSeconds >= 2 * o.MembershipIntervalSeconds ? null
            : $"{ClusterOptions.Section}:LeaseSeconds must be at least twice MembershipIntervalSeconds (got {o.LeaseSeconds} and {o.MembershipIntervalSeconds})",
        o.SiloTimeoutSeconds >= 2 * o.MembershipIntervalSeconds ? null
            : $"{ClusterOptions.Section}:SiloTimeoutSeconds must be at least twice MembershipIntervalSeconds (got {o.SiloTimeoutSeconds} and {o.MembershipIntervalSeconds})",
        o.Secret is null || o.Secret.Length >= 16 ? null : $"{ClusterOptions.Section}:Secret must be at least 16 characters");

    public ValidateOptionsResult Validate(string? name, SiloOptions o) => Collect(
        // Offline events may be up to about two ticks late; API.md allows one second.
        Range(SiloOptions.Section, "TimerTickMilliseconds", o.TimerTickMilliseconds, 10, 400),
        Positive(SiloOptions.Section, "CollectionAgeSeconds", o.CollectionAgeSeconds, 86_400),
        Cluster.SiloEndpoint.TryParse(o.Endpoint, out _) ? null
            : $"{SiloOptions.Section}:Endpoint must be host:port with an IP address, e.g. 127.0.0.1:0 or 0.0.0.0:7070 (got '{o.Endpoint}')");

    private static string? Positive(string section, string key, double value, double max) =>
        double.IsFinite(value) && value > 0 && value <= max ? null : $"{section}:{key} must be a number greater than 0 and at most {max} (got {value})";

    private static string? Range(string section, string key, int value, int min, int max) =>
        value >= min && value <= max ? null : $"{section}:{key} must be between {min} and {max} (got {value})";

    private static ValidateOptionsResult Collect(params string?[] failures)
    {
        var messages = failures.Where(f => f is not null).Cast<string>().ToArray();
        return messages.Length == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(messages);
    }
}
