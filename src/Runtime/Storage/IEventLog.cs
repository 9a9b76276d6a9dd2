using Presence.Grains.Abstractions;

namespace Presence.Runtime.Storage;

/// <summary>
/// The append-only event log, read by cursor. Appends happen only through <see cref="IPresenceStore.CommitAsync"/>.
/// Readers never see a gap: an event is readable only once every event before it is.
/// </summary>
public interface IEventLog
{
    /// <summary>Identifies this log's lifetime; cursors of another epoch are expired.</summary>
    long Epoch { get; }

    /// <summary>
    /// The cursor of the last event known to be appended (the "current end"). A durable log shared by several
    /// processes may learn of other writers' events a moment late; every event up to it is readable.
    /// </summary>
    EventCursor Head { get; }

    /// <summary>
    /// Events of <paramref name="tenantId"/> after <paramref name="after"/>, in order, at most <paramref name="limit"/>
    /// (optionally only of one device). The page's cursor is where the next read continues; it may move past
    /// other tenants' events even when the page is empty.
    /// </summary>
    ValueTask<EventPage> ReadAsync(string tenantId, EventCursor after, int limit, string? deviceId = null, CancellationToken cancellationToken = default);

    /// <summary>Whether a read could continue from <paramref name="cursor"/>.</summary>
    ValueTask<CursorState> ValidateAsync(EventCursor cursor, CancellationToken cancellationToken = default);

    /// <summary>Completes when an event after <paramref name="after"/> exists (the doorbell).</summary>
    Task WaitAsync(EventCursor after, CancellationToken cancellationToken);
}

public enum CursorState : byte
{
    Valid,

    /// <summary>From another epoch, or older than retention.</summary>
    Expired,

    /// <summary>Beyond the head of this epoch: never issued by this log.</summary>
    Unknown,
}

public sealed record EventPage(CursorState State, IReadOnlyList<DeviceEvent> Events, EventCursor Next)
{
    public static EventPage Invalid(CursorState state, EventCursor at) => new(state, [], at);
}
