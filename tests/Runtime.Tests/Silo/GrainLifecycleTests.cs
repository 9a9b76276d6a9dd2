using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Tests.Silo;

public sealed class GrainLifecycleTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    [Fact]
    public async Task Idle_offline_grains_are_collected_and_remain_readable_from_storage()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Silo:CollectionAgeSeconds"] = "10" });
        var registered = await silo.HeartbeatAsync("idle");
        var lastUsed = silo.Now;
        Assert.Equal(1, silo.Runtime.Activations);

        await silo.AdvanceToAsync(lastUsed + TimeSpan.FromSeconds(10) - Tick, Tick);
        Assert.Single(silo.OfflineEvents("idle"));
        Assert.Equal(1, silo.Runtime.Activations);

        await silo.AdvanceToAsync(lastUsed + TimeSpan.FromSeconds(11), Tick);
        Assert.Equal(0, silo.Runtime.Activations);

        var device = await silo.GetAsync("idle");
        Assert.NotNull(device);
        Assert.Equal(DeviceStatus.Offline, device.Status);
        Assert.Equal(registered.LastSeenAt, device.LastSeenAt);
        Assert.Equal(registered.FirstSeenAt, device.FirstSeenAt);
        Assert.Equal(2, device.Version);
        Assert.Equal(3, device.Sequence);
        var session = Assert.Single((await silo.Grains.GetSessionsAsync(TestSilo.Key("idle"), 10))!);
        Assert.Equal(registered.SessionId, session.SessionId);
        Assert.Equal(StatusReason.Timeout, session.EndReason);
    }

    [Fact]
    public async Task Collected_device_continues_its_sequence_when_it_comes_back()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Silo:CollectionAgeSeconds"] = "5" });
        var first = await silo.HeartbeatAsync("returning");
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(7), Tick);
        Assert.Equal(0, silo.Runtime.Activations);

        var back = await silo.HeartbeatAsync("returning");

        Assert.Equal(DeviceStatus.Online, back.Status);
        Assert.NotEqual(first.SessionId, back.SessionId);
        Assert.Equal(3, back.Version);
        Assert.Equal(4, back.Sequence);
        Assert.Equal(first.FirstSeenAt, back.FirstSeenAt);
        Assert.Equal(new long[] { 1, 2, 3, 4 }, silo.Events("returning").Select(e => e.Sequence));
    }

    [Fact]
    public async Task Reading_a_collected_device_does_not_keep_it_active()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Silo:CollectionAgeSeconds"] = "5" });
        await silo.HeartbeatAsync("read-only");
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(6), Tick);
        Assert.Equal(0, silo.Runtime.Activations);

        Assert.NotNull(await silo.GetAsync("read-only"));
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(6), Tick);

        Assert.Equal(0, silo.Runtime.Activations);
    }

    [Fact]
    public async Task Online_grains_are_not_collected()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Silo:CollectionAgeSeconds"] = "1" });
        await silo.HeartbeatAsync("alive");

        for (var i = 0; i < 5; i++)
        {
            await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(2), Tick);
            Assert.Equal(1, silo.Runtime.Activations);
            await silo.HeartbeatAsync("alive");
        }

        Assert.Empty(silo.OfflineEvents("alive"));
    }

    [Fact]
    public async Task Unknown_device_reads_as_missing_and_leaves_no_activation()
    {
        await using var silo = await TestSilo.StartAsync();

        Assert.Null(await silo.GetAsync("ghost"));
        Assert.Null(await silo.Grains.GetSessionsAsync(TestSilo.Key("ghost"), 10));
        Assert.False(await silo.Grains.RemoveAsync(TestSilo.Key("ghost")));
        Assert.False(await silo.Grains.CommandResultAsync(TestSilo.Key("ghost"), new CommandResult("c", true, null)));
        await silo.Grains.ChannelOpenedAsync(TestSilo.Key("ghost"));

        Assert.Equal(0, silo.Runtime.Activations);
        Assert.Empty(silo.Events());
        Assert.Null(await silo.Store.ReadDeviceAsync(TestSilo.Key("ghost")));
    }

    [Fact]
    public async Task Sessions_are_listed_newest_first_with_the_open_one_on_top()
    {
        await using var silo = await TestSilo.StartAsync();
        var key = TestSilo.Key("history");
        var first = await silo.HeartbeatAsync("history");
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(5), Tick);
        var second = await silo.HeartbeatAsync("history");
        await silo.AdvanceAsync(TimeSpan.FromSeconds(1));
        await silo.HeartbeatAsync("history");
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(5), Tick);

        var whileOffline = await silo.Grains.GetSessionsAsync(key, 10);
        var third = await silo.HeartbeatAsync("history");
        var all = await silo.Grains.GetSessionsAsync(key, 10);
        var two = await silo.Grains.GetSessionsAsync(key, 2);
        var one = await silo.Grains.GetSessionsAsync(key, 1);

        Assert.Equal(new[] { second.SessionId, first.SessionId }, whileOffline!.Select(s => s.SessionId));
        Assert.Collection(
            all!,
            open =>
            {
                Assert.Equal(third.SessionId, open.SessionId);
                Assert.Equal(third.LastSeenAt, open.StartedAt);
                Assert.Null(open.EndedAt);
                Assert.Null(open.EndReason);
                Assert.Equal(1, open.Heartbeats);
            },
            previous =>
            {
                Assert.Equal(second.SessionId, previous.SessionId);
                Assert.Equal(second.LastSeenAt, previous.StartedAt);
                Assert.Equal(StatusReason.Timeout, previous.EndReason);
                Assert.Equal(2, previous.Heartbeats);
                Assert.NotNull(previous.EndedAt);
            },
            oldest =>
            {
                Assert.Equal(first.SessionId, oldest.SessionId);
                Assert.Equal(StatusReason.Timeout, oldest.EndReason);
                Assert.Equal(1, oldest.Heartbeats);
                Assert.True(oldest.EndedAt <= second.LastSeenAt);
            });
        Assert.Equal(new[] { third.SessionId, second.SessionId }, two!.Select(s => s.SessionId));
        Assert.Equal(third.SessionId, Assert.Single(one!).SessionId);
        Assert.Equal(3, all!.Select(s => s.SessionId).Distinct().Count());
    }

    [Fact]
    public async Task Removing_an_online_device_reports_it_offline_then_removed_and_forgets_it()
    {
        await using var silo = await TestSilo.StartAsync();
        var key = TestSilo.Key("doomed");
        var device = await silo.HeartbeatAsync("doomed");
        await silo.HeartbeatAsync("survivor");

        Assert.True(await silo.Grains.RemoveAsync(key));

        Assert.Collection(
            silo.Events("doomed").Skip(2),
            offline =>
            {
                Assert.Equal(DeviceEventType.Status, offline.Type);
                Assert.Equal(DeviceStatus.Offline, offline.Status);
                Assert.Equal(StatusReason.Removed, offline.Reason);
                Assert.Equal(device.SessionId, offline.SessionId);
                Assert.Equal(3, offline.Sequence);
            },
            removed =>
            {
                Assert.Equal(DeviceEventType.Removed, removed.Type);
                Assert.Equal(4, removed.Sequence);
            });
        Assert.Null(await silo.GetAsync("doomed"));
        Assert.Null(await silo.Grains.GetSessionsAsync(key, 10));
        Assert.Null(await silo.Store.ReadDeviceAsync(key));
        var listed = await silo.Store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Any, null, null, 100));
        Assert.Equal(new[] { "survivor" }, listed.Devices.Select(d => d.DeviceId));
        Assert.Equal(1, (await silo.Store.CountDevicesAsync("default", TestSilo.Start)).Total);

        Assert.False(await silo.Grains.RemoveAsync(key));
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(5), Tick);
        Assert.Equal(4, silo.Events("doomed").Count);
    }

    [Fact]
    public async Task Heartbeat_after_removal_registers_the_device_again()
    {
        await using var silo = await TestSilo.StartAsync();
        var key = TestSilo.Key("phoenix");
        await silo.HeartbeatAsync("phoenix");
        Assert.True(await silo.Grains.RemoveAsync(key));

        var again = await silo.HeartbeatAsync("phoenix");

        Assert.Equal(1, again.Version);
        Assert.Equal(new[] { DeviceEventType.Registered, DeviceEventType.Status }, silo.Events("phoenix").Skip(4).Select(e => e.Type));
        Assert.Equal(DeviceStatus.Online, (await silo.Store.ReadDeviceAsync(key))!.Status);
    }

    [Fact]
    public async Task Command_result_is_appended_with_the_next_sequence()
    {
        await using var silo = await TestSilo.StartAsync();
        await silo.HeartbeatAsync("commanded");

        Assert.True(await silo.Grains.CommandResultAsync(TestSilo.Key("commanded"), new CommandResult("cmd-1", true, "ok")));

        var result = silo.Events("commanded")[^1];
        Assert.Equal(DeviceEventType.CommandResult, result.Type);
        Assert.Equal(3, result.Sequence);
        Assert.Equal("cmd-1", result.CommandId);
        Assert.Equal(3, (await silo.Store.ReadDeviceAsync(TestSilo.Key("commanded")))!.Sequence);
    }

    [Fact]
    public async Task Heartbeats_over_the_rate_limit_are_refused_and_change_nothing()
    {
        await using var silo = await TestSilo.StartAsync(new()
        {
            ["Presence:RateLimit:HeartbeatsPerMinute"] = "3",
            ["Presence:Heartbeat:TimeoutSeconds"] = "90",
        });
        var key = TestSilo.Key("chatty");
        for (var i = 0; i < 3; i++)
        {
            await silo.HeartbeatAsync("chatty");
            await silo.AdvanceAsync(TimeSpan.FromSeconds(1));
        }

        var limited = await silo.Grains.HeartbeatAsync(key, new HeartbeatInput("chatty", Platform: "linux"));

        Assert.Equal(HeartbeatOutcome.RateLimited, limited.Outcome);
        Assert.Equal(TimeSpan.FromSeconds(57), limited.RetryAfter);
        var device = await silo.GetAsync("chatty");
        Assert.Equal(3, device!.Version);
        Assert.Null(device.Platform);
        Assert.Equal(TestSilo.Start + TimeSpan.FromSeconds(2), device.LastSeenAt);

        await silo.AdvanceAsync(TimeSpan.FromSeconds(57));
        Assert.Equal(HeartbeatOutcome.Accepted, (await silo.Grains.HeartbeatAsync(key, new HeartbeatInput("chatty"))).Outcome);
    }

    [Fact]
    public async Task Heartbeat_state_reaches_storage_within_the_flush_interval()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Heartbeat:TimeoutSeconds"] = "90" });
        var key = TestSilo.Key("metered");
        await silo.HeartbeatAsync("metered");
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromMilliseconds(1300), TimeSpan.FromMilliseconds(50));
        var sentAt = silo.Now;
        await silo.Grains.HeartbeatAsync(key, new HeartbeatInput("metered", Metrics: new MetricSet(["cpu_pct"], [42.5])));
        DateTime? storedAt = null;

        await silo.AdvanceToAsync(sentAt + TimeSpan.FromSeconds(2), TimeSpan.FromMilliseconds(50), async () =>
        {
            if ((await silo.Store.ReadDeviceAsync(key))!.Version == 2)
            {
                storedAt ??= silo.Now;
            }
        });

        Assert.NotNull(storedAt);
        Assert.InRange(storedAt.Value, sentAt, sentAt + TimeSpan.FromSeconds(1) + Tick);
        var stored = await silo.Store.ReadDeviceAsync(key);
        Assert.Equal(sentAt, stored!.LastSeenAt);
        Assert.Equal(42.5, Assert.Single(stored.Metrics.Values));
    }

    [Fact]
    public async Task Stopping_the_silo_writes_every_changed_device()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Heartbeat:TimeoutSeconds"] = "90" });
        var ids = Enumerable.Range(0, 50).Select(i => $"stop-{i}").ToArray();
        await Task.WhenAll(ids.Select(silo.HeartbeatAsync));
        await silo.AdvanceAsync(TimeSpan.FromMilliseconds(10));
        await Task.WhenAll(ids.Select(silo.HeartbeatAsync));

        await silo.Runtime.StopAsync(CancellationToken.None);

        foreach (var id in ids)
        {
            var stored = await silo.Store.ReadDeviceAsync(TestSilo.Key(id));
            Assert.Equal(2, stored!.Version);
        }
    }
}
