namespace Presence.Grains.Abstractions;

/// <summary>One online period of a device (uptime history).</summary>
public sealed record SessionRecord(long SessionId, DateTime StartedAt, DateTime? EndedAt, StatusReason? EndReason, long Heartbeats);
