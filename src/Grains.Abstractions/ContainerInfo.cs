namespace Presence.Grains.Abstractions;

/// <summary>One container a device reports, as in the heartbeat's <c>containers</c> array.</summary>
public sealed record ContainerInfo(string Name, string Image, string State, string Ports);
