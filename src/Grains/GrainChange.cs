using Presence.Grains.Abstractions;

namespace Presence.Grains;

/// <summary>What a grain turn changed, so the host knows what to persist and how soon.</summary>
[Flags]
public enum ChangeKind : byte
{
    None = 0,

    /// <summary>State changed; may be written behind (last-seen, metrics).</summary>
    State = 1,

    /// <summary>Events were emitted: state and events must be durable before the caller is answered.</summary>
    Durable = 2,

    /// <summary>The device no longer exists.</summary>
    Removed = 4,
}

/// <summary>The result of one transition: what changed and the session it ended, if any.</summary>
public readonly record struct GrainChange(ChangeKind Kind, SessionRecord? EndedSession = null)
{
    public static readonly GrainChange None = new(ChangeKind.None);

    public bool IsDurable => (Kind & ChangeKind.Durable) != 0;
}
