using System.Globalization;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Tests.Silo;

public sealed class OfflineDetectionTests
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan Lateness = TimeSpan.FromSeconds(1);

    [Theory]
    [InlineData(3.0, 0)]
    [InlineData(3.0, 130)]
    [InlineData(1.5, 470)]
    [InlineData(2.2, 999)]
    public async Task Device_goes_offline_no_earlier_than_its_timeout_and_no_later_than_one_second_after(double timeoutSeconds, int startOffsetMs)
    {
        var timeout = TimeSpan.FromSeconds(timeoutSeconds);
        await using var silo = await TestSilo.StartAsync(new()
        {
            ["Presence:Heartbeat:TimeoutSeconds"] = timeoutSeconds.ToString(CultureInfo.InvariantCulture),
        });
        await silo.AdvanceAsync(TimeSpan.FromMilliseconds(startOffsetMs));
        var lastSeen = (await silo.HeartbeatAsync("quiet")).LastSeenAt;
        Assert.Equal(silo.Now, lastSeen);
        DateTime? offlineSeenAt = null;

        await silo.AdvanceToAsync(lastSeen + timeout + Lateness + Step, Step, async () =>
        {
            var device = await silo.GetAsync("quiet");
            if (device!.Status == DeviceStatus.Offline)
            {
                offlineSeenAt ??= silo.Now;
            }
            else
            {
                Assert.Null(offlineSeenAt);
            }
        });

        Assert.NotNull(offlineSeenAt);
        Assert.InRange(offlineSeenAt.Value, lastSeen + timeout, lastSeen + timeout + Lateness);
        var offline = Assert.Single(silo.OfflineEvents("quiet"));
        Assert.Equal(StatusReason.Timeout, offline.Reason);
        Assert.Equal(lastSeen, offline.LastSeenAt);
        Assert.Equal(3, offline.Sequence);
        Assert.InRange(offline.Time, lastSeen + timeout, lastSeen + timeout + Lateness);
        var stored = await silo.Store.ReadDeviceAsync(TestSilo.Key("quiet"));
        Assert.Equal(DeviceStatus.Offline, stored!.Status);
        Assert.Equal(offline.Time, stored.StatusChangedAt);
    }

    [Fact]
    public async Task Thousand_devices_all_time_out_with_exactly_one_offline_event_each()
    {
        await using var silo = await TestSilo.StartAsync();
        var ids = Enumerable.Range(0, 1000).Select(i => $"fleet-{i:D4}").ToArray();
        await Task.WhenAll(ids.Select(silo.HeartbeatAsync));
        var lastSeen = silo.Now;

        await silo.AdvanceToAsync(lastSeen + TestSilo.Timeout - Step, Step);
        Assert.Empty(silo.OfflineEvents());

        await silo.AdvanceToAsync(lastSeen + TestSilo.Timeout + Lateness, Step);
        var offline = silo.OfflineEvents();
        Assert.Equal(1000, offline.Count);
        Assert.Equal(ids, offline.Select(e => e.DeviceId).Order(StringComparer.Ordinal));
        Assert.All(offline, e =>
        {
            Assert.Equal(StatusReason.Timeout, e.Reason);
            Assert.Equal(3, e.Sequence);
            Assert.InRange(e.Time, lastSeen + TestSilo.Timeout, lastSeen + TestSilo.Timeout + Lateness);
        });

        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(250));
        Assert.Equal(1000, silo.OfflineEvents().Count);
        Assert.Equal(new DeviceCounts(1000, 0, 1000), await silo.Store.CountDevicesAsync("default", lastSeen));
        var offlinePage = await silo.Store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Offline, null, null, 1000));
        Assert.Equal(1000, offlinePage.Devices.Count);
    }

    [Fact]
    public async Task Device_that_keeps_heartbeating_is_never_offline()
    {
        await using var silo = await TestSilo.StartAsync();
        var interval = TimeSpan.FromMilliseconds(2750);
        var heartbeats = 1;
        await silo.HeartbeatAsync("steady");
        var nextHeartbeat = silo.Now + interval;

        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(60), TimeSpan.FromMilliseconds(250), async () =>
        {
            if (silo.Now >= nextHeartbeat)
            {
                await silo.HeartbeatAsync("steady");
                heartbeats++;
                nextHeartbeat = silo.Now + interval;
            }

            Assert.Equal(DeviceStatus.Online, (await silo.GetAsync("steady"))!.Status);
        });

        Assert.Empty(silo.OfflineEvents("steady"));
        Assert.Equal(2, silo.Events("steady").Count);
        var device = await silo.GetAsync("steady");
        Assert.Equal(heartbeats, device!.Version);
        Assert.Equal(heartbeats, device.SessionHeartbeats);
        Assert.True(heartbeats >= 21);
    }

    [Fact]
    public async Task Silent_device_goes_offline_while_a_busy_neighbour_stays_online()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Cluster:Partitions"] = "1" });
        await silo.HeartbeatAsync("busy");
        await silo.HeartbeatAsync("silent");
        var lastSeen = silo.Now;

        await silo.AdvanceToAsync(lastSeen + TestSilo.Timeout + Lateness, Step, async () => await silo.HeartbeatAsync("busy"));

        Assert.Equal(DeviceStatus.Online, (await silo.GetAsync("busy"))!.Status);
        var offline = Assert.Single(silo.OfflineEvents());
        Assert.Equal("silent", offline.DeviceId);
        Assert.InRange(offline.Time, lastSeen + TestSilo.Timeout, lastSeen + TestSilo.Timeout + Lateness);
    }

    [Fact]
    public async Task Device_with_an_open_channel_stays_online_until_the_grace_after_it_closes()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Heartbeat:DisconnectGraceSeconds"] = "2" });
        await silo.HeartbeatAsync("socket");
        await silo.Grains.ChannelOpenedAsync(TestSilo.Key("socket"));

        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(30), TimeSpan.FromMilliseconds(250));
        Assert.Equal(DeviceStatus.Online, (await silo.GetAsync("socket"))!.Status);
        Assert.Empty(silo.OfflineEvents("socket"));

        await silo.AdvanceAsync(TimeSpan.FromMilliseconds(30));
        var closedAt = silo.Now;
        await silo.Grains.ChannelClosedAsync(TestSilo.Key("socket"));
        await silo.AdvanceToAsync(closedAt + TimeSpan.FromSeconds(2) - Step, Step);
        Assert.Empty(silo.OfflineEvents("socket"));

        await silo.AdvanceToAsync(closedAt + TimeSpan.FromSeconds(2) + Lateness, Step);
        var offline = Assert.Single(silo.OfflineEvents("socket"));
        Assert.Equal(StatusReason.Disconnected, offline.Reason);
        Assert.InRange(offline.Time, closedAt + TimeSpan.FromSeconds(2), closedAt + TimeSpan.FromSeconds(2) + Lateness);
    }

    [Fact]
    public async Task Reconnecting_within_the_grace_keeps_the_device_online()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Heartbeat:DisconnectGraceSeconds"] = "2" });
        var key = TestSilo.Key("flaky");
        await silo.HeartbeatAsync("flaky");
        await silo.Grains.ChannelOpenedAsync(key);
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(10), TimeSpan.FromMilliseconds(250));

        await silo.Grains.ChannelClosedAsync(key);
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(1.5), Step);
        await silo.Grains.ChannelOpenedAsync(key);
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(20), TimeSpan.FromMilliseconds(250));

        Assert.Equal(DeviceStatus.Online, (await silo.GetAsync("flaky"))!.Status);
        Assert.Empty(silo.OfflineEvents("flaky"));
    }
}
