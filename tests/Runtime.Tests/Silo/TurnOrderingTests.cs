using Microsoft.Extensions.DependencyInjection;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Runtime.Storage.Memory;

namespace Presence.Runtime.Tests.Silo;

/// <summary>
/// Calls that reach a partition while it is in the middle of a turn (waiting on storage) are applied in a later
/// part of that turn. These tests hold a storage read to create that situation deterministically.
/// </summary>
public sealed class TurnOrderingTests
{
    private static Task<TestSilo> StartGatedAsync() => TestSilo.StartAsync(
        new() { ["Presence:Cluster:Partitions"] = "1" },
        services => services.AddSingleton<IPresenceStore>(sp => new GatedStore(new MemoryPresenceStore(sp.GetRequiredService<MemoryEventLog>()))));

    [Fact]
    public async Task Heartbeat_that_waits_behind_a_slow_storage_read_counts_from_when_it_arrived()
    {
        await using var silo = await StartGatedAsync();
        var store = (GatedStore)silo.Store;
        await silo.HeartbeatAsync("punctual");
        var hold = store.HoldReadOf(TestSilo.Key("newcomer"));
        var newcomer = silo.HeartbeatAsync("newcomer");
        await hold.Entered;

        silo.Time.Advance(TestSilo.Timeout + TimeSpan.FromMilliseconds(500));
        var arrivedAt = silo.Now;
        var heartbeat = silo.Grains.HeartbeatAsync(TestSilo.Key("punctual"), new HeartbeatInput("punctual"));
        hold.Release();
        await newcomer;
        var result = await heartbeat;
        await silo.Runtime.QuiesceAsync();
        await silo.Runtime.QuiesceAsync();

        Assert.Equal(arrivedAt, result.Device!.LastSeenAt);
        var device = await silo.GetAsync("punctual");
        Assert.Equal(DeviceStatus.Online, device!.Status);
        Assert.Equal(arrivedAt, device.LastSeenAt);
        Assert.Equal(DeviceStatus.Online, silo.Events("punctual")[^1].Status);
    }

    [Fact]
    public async Task Device_removed_and_heartbeating_again_in_one_turn_is_registered_anew()
    {
        await using var silo = await StartGatedAsync();
        var store = (GatedStore)silo.Store;
        var key = TestSilo.Key("phoenix");
        await silo.HeartbeatAsync("phoenix");
        var hold = store.HoldReadOf(TestSilo.Key("blocker"));
        var blocker = silo.HeartbeatAsync("blocker");
        await hold.Entered;

        var removed = silo.Grains.RemoveAsync(key);
        var again = silo.Grains.HeartbeatAsync(key, new HeartbeatInput("phoenix"));
        hold.Release();
        await blocker;

        Assert.True(await removed);
        var result = await again;
        Assert.Equal(HeartbeatOutcome.Accepted, result.Outcome);
        Assert.Equal(1, result.Device!.Version);
        Assert.Equal(
            new[] { DeviceEventType.Registered, DeviceEventType.Status, DeviceEventType.Status, DeviceEventType.Removed, DeviceEventType.Registered, DeviceEventType.Status },
            silo.Events("phoenix").Select(e => e.Type));
        var stored = await store.ReadDeviceAsync(key);
        Assert.NotNull(stored);
        Assert.Equal(result.Device.FirstSeenAt, stored.FirstSeenAt);
        var listed = await store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Any, "phoenix", null, 10));
        Assert.Single(listed.Devices);
    }
}
