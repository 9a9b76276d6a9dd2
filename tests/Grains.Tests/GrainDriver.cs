using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

/// <summary>
/// Hosts one <see cref="DeviceGrain"/> the way a partition does, with a clock the test moves and session ids
/// that are predictable (1, 2, 3...), and keeps every event the grain emitted.
/// </summary>
internal sealed class GrainDriver
{
    public static readonly DateTime T0 = new(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc);

    private long _sessions;

    public GrainDriver(DevicePolicy? policy = null, DeviceRecord? state = null, string deviceId = "agent-42")
    {
        Policy = (policy ?? new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(30) }) with
        {
            NewSessionId = () => ++_sessions,
        };
        Grain = new DeviceGrain(new DeviceKey(DeviceKey.DefaultTenant, deviceId), state);
    }

    public DeviceGrain Grain { get; }

    public DevicePolicy Policy { get; }

    public DateTime Now { get; private set; } = T0;

    public List<DeviceEvent> Events { get; } = [];

    public DeviceRecord State => Grain.State ?? throw new InvalidOperationException("the device does not exist");

    public string DeviceId => Grain.Key.DeviceId;

    public void Advance(TimeSpan by) => Now += by;

    public void AdvanceTo(DateTime time) => Now = time;

    public HeartbeatResult Heartbeat(HeartbeatInput? input = null) => Heartbeat(input, out _);

    public HeartbeatResult Heartbeat(HeartbeatInput? input, out GrainChange change) =>
        Grain.Heartbeat(input ?? new HeartbeatInput(DeviceId), Now, Policy, Events, out change);

    public GrainChange Expire() => Grain.Expire(Now, Policy, Events);

    public GrainChange Remove() => Grain.Remove(Now, Events);

    public void CloseChannel() => Grain.ChannelClosed(Now);
}
