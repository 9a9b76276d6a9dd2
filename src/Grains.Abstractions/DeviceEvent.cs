namespace Presence.Grains.Abstractions;

public enum DeviceEventType : byte
{
    Registered,
    Status,
    Removed,
    CommandResult,
}

/// <summary>
/// One entry of a tenant's event stream. Grains create events without a position; the event log assigns
/// <see cref="Position"/> when it appends, exactly once.
/// </summary>
public sealed class DeviceEvent
{
    private long _position;
    private byte[]? _json;

    public required string TenantId { get; init; }
    public required string DeviceId { get; init; }
    public required DeviceEventType Type { get; init; }

    /// <summary>The device's event number: 1 for its first event, +1 for each later one.</summary>
    public required long Sequence { get; init; }
    public required DateTime Time { get; init; }

    // device.status
    public DeviceStatus Status { get; init; }
    public DeviceStatus PreviousStatus { get; init; }
    public StatusReason Reason { get; init; }
    public DateTime LastSeenAt { get; init; }
    public long SessionId { get; init; }

    // device.registered
    public string? DeviceName { get; init; }
    public string? Platform { get; init; }

    // command.result
    public string? CommandId { get; init; }
    public bool Ok { get; init; }
    public string? Output { get; init; }

    /// <summary>Position in the event log; 0 until appended.</summary>
    public long Position => Volatile.Read(ref _position);

    public DeviceKey Key => new(TenantId, DeviceId);

    public void AssignPosition(long position)
    {
        if (position <= 0 || Interlocked.CompareExchange(ref _position, position, 0) != 0)
        {
            throw new InvalidOperationException("An event's position is assigned once, by the event log.");
        }
    }

    /// <summary>The event's CloudEvents JSON (a slice of <see cref="ToFrame"/>).</summary>
    public ReadOnlyMemory<byte> ToJson(long epoch) =>
        ToFrame(epoch)[PresenceJson.EventFramePrefix.Length..^PresenceJson.EventFrameSuffix.Length];

    /// <summary>
    /// The WebSocket message carrying this event, <c>{"type":"event","event":{...}}</c>: rendered once and shared by
    /// every reader, since many portals watch one stream.
    /// </summary>
    public ReadOnlyMemory<byte> ToFrame(long epoch)
    {
        var frame = Volatile.Read(ref _json);
        if (frame is null)
        {
            frame = PresenceJson.RenderEventFrame(this, new EventCursor(epoch, Position));
            Volatile.Write(ref _json, frame);
        }

        return frame;
    }
}
