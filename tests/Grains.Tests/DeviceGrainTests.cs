using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

public sealed class DeviceGrainTests
{
    private static readonly TimeSpan OneTick = TimeSpan.FromTicks(1);

    [Fact]
    public void First_heartbeat_registers_the_device_then_reports_it_online()
    {
        var driver = new GrainDriver();

        var result = driver.Heartbeat(new HeartbeatInput("agent-42", DeviceName: "Rack 3 agent", Platform: "linux"), out var change);

        Assert.Equal(HeartbeatOutcome.Accepted, result.Outcome);
        Assert.True(change.IsDurable);
        Assert.Collection(
            driver.Events,
            registered =>
            {
                Assert.Equal(DeviceEventType.Registered, registered.Type);
                Assert.Equal(1, registered.Sequence);
                Assert.Equal(GrainDriver.T0, registered.Time);
                Assert.Equal("Rack 3 agent", registered.DeviceName);
                Assert.Equal("linux", registered.Platform);
                Assert.Equal("default", registered.TenantId);
                Assert.Equal("agent-42", registered.DeviceId);
            },
            online =>
            {
                Assert.Equal(DeviceEventType.Status, online.Type);
                Assert.Equal(2, online.Sequence);
                Assert.Equal(DeviceStatus.Online, online.Status);
                Assert.Equal(DeviceStatus.Offline, online.PreviousStatus);
                Assert.Equal(StatusReason.Heartbeat, online.Reason);
                Assert.Equal(GrainDriver.T0, online.LastSeenAt);
                Assert.Equal(result.Device!.SessionId, online.SessionId);
            });
    }

    [Fact]
    public void Registered_device_starts_online_with_version_one_and_its_first_session()
    {
        var driver = new GrainDriver();

        var device = driver.Heartbeat().Device!;

        Assert.Same(driver.Grain.State, device);
        Assert.Equal(DeviceStatus.Online, device.Status);
        Assert.Equal("agent-42", device.DeviceName);
        Assert.Equal(1, device.Version);
        Assert.Equal(2, device.Sequence);
        Assert.Equal(GrainDriver.T0, device.FirstSeenAt);
        Assert.Equal(GrainDriver.T0, device.LastSeenAt);
        Assert.Equal(GrainDriver.T0, device.StatusChangedAt);
        Assert.Equal(GrainDriver.T0, device.SessionStartedAt);
        Assert.NotEqual(0, device.SessionId);
        Assert.Equal(1, device.SessionHeartbeats);
        Assert.Empty(device.Metrics.Keys);
        Assert.Empty(device.Containers);
    }

    [Fact]
    public void Every_accepted_heartbeat_of_an_online_device_adds_one_to_version_and_emits_no_event()
    {
        var driver = new GrainDriver();
        driver.Heartbeat();

        for (var i = 2; i <= 6; i++)
        {
            driver.Advance(TimeSpan.FromSeconds(5));
            var device = driver.Heartbeat(null, out var change).Device!;

            Assert.Equal(i, device.Version);
            Assert.Equal(i, device.SessionHeartbeats);
            Assert.Equal(driver.Now, device.LastSeenAt);
            Assert.Equal(2, device.Sequence);
            Assert.Equal(ChangeKind.State, change.Kind);
        }

        Assert.Equal(2, driver.Events.Count);
        Assert.Equal(GrainDriver.T0, driver.State.StatusChangedAt);
        Assert.Equal(GrainDriver.T0, driver.State.FirstSeenAt);
    }

    [Fact]
    public void Later_heartbeats_update_name_platform_and_app_version_and_keep_omitted_ones()
    {
        var driver = new GrainDriver();
        driver.Heartbeat(new HeartbeatInput("agent-42", DeviceName: "first", Platform: "linux", AppVersion: "1.0"));

        driver.Heartbeat(new HeartbeatInput("agent-42", AppVersion: "1.1"));

        Assert.Equal("first", driver.State.DeviceName);
        Assert.Equal("linux", driver.State.Platform);
        Assert.Equal("1.1", driver.State.AppVersion);

        driver.Heartbeat(new HeartbeatInput("agent-42", DeviceName: "second", Platform: "docker"));

        Assert.Equal("second", driver.State.DeviceName);
        Assert.Equal("docker", driver.State.Platform);
        Assert.Equal("1.1", driver.State.AppVersion);
    }

    [Fact]
    public void Device_goes_offline_exactly_at_last_seen_plus_timeout_and_not_one_tick_earlier()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(3) });
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(1));
        driver.Heartbeat();
        var lastSeen = driver.Now;
        var sessionId = driver.State.SessionId;

        Assert.Equal(lastSeen + TimeSpan.FromSeconds(3), driver.Grain.Deadline(driver.Policy));
        driver.AdvanceTo(lastSeen + TimeSpan.FromSeconds(3) - OneTick);
        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Equal(DeviceStatus.Online, driver.State.Status);
        Assert.Equal(2, driver.Events.Count);

        driver.Advance(OneTick);
        var change = driver.Expire();

        Assert.True(change.IsDurable);
        Assert.Equal(DeviceStatus.Offline, driver.State.Status);
        Assert.Equal(driver.Now, driver.State.StatusChangedAt);
        Assert.Equal(lastSeen, driver.State.LastSeenAt);
        Assert.Equal(3, driver.State.Version);
        Assert.Equal(3, driver.State.Sequence);
        Assert.Null(driver.Grain.Deadline(driver.Policy));

        var offline = driver.Events[^1];
        Assert.Equal(DeviceEventType.Status, offline.Type);
        Assert.Equal(3, offline.Sequence);
        Assert.Equal(DeviceStatus.Offline, offline.Status);
        Assert.Equal(DeviceStatus.Online, offline.PreviousStatus);
        Assert.Equal(StatusReason.Timeout, offline.Reason);
        Assert.Equal(lastSeen, offline.LastSeenAt);
        Assert.Equal(sessionId, offline.SessionId);
        Assert.Equal(lastSeen + TimeSpan.FromSeconds(3), offline.Time);

        Assert.Equal(new SessionRecord(sessionId, GrainDriver.T0, driver.Now, StatusReason.Timeout, 2), change.EndedSession);
    }

    [Fact]
    public void Offline_device_does_not_time_out_again()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(3) });
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(3));
        driver.Expire();
        var offline = driver.State;

        driver.Advance(TimeSpan.FromHours(1));

        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Same(offline, driver.State);
        Assert.Equal(3, driver.Events.Count);
    }

    [Fact]
    public void Heartbeat_after_offline_opens_a_new_session_with_reason_heartbeat()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(3) });
        driver.Heartbeat();
        var firstSession = driver.State.SessionId;
        driver.Advance(TimeSpan.FromSeconds(3));
        driver.Expire();
        driver.Advance(TimeSpan.FromSeconds(10));

        var device = driver.Heartbeat(null, out var change).Device!;

        Assert.True(change.IsDurable);
        Assert.Null(change.EndedSession);
        Assert.Equal(DeviceStatus.Online, device.Status);
        Assert.NotEqual(firstSession, device.SessionId);
        Assert.NotEqual(0, device.SessionId);
        Assert.Equal(driver.Now, device.SessionStartedAt);
        Assert.Equal(driver.Now, device.StatusChangedAt);
        Assert.Equal(driver.Now, device.LastSeenAt);
        Assert.Equal(GrainDriver.T0, device.FirstSeenAt);
        Assert.Equal(1, device.SessionHeartbeats);
        Assert.Equal(3, device.Version);
        Assert.Equal(4, device.Sequence);

        var online = driver.Events[^1];
        Assert.Equal(4, driver.Events.Count);
        Assert.Equal(DeviceEventType.Status, online.Type);
        Assert.Equal(4, online.Sequence);
        Assert.Equal(DeviceStatus.Online, online.Status);
        Assert.Equal(DeviceStatus.Offline, online.PreviousStatus);
        Assert.Equal(StatusReason.Heartbeat, online.Reason);
        Assert.Equal(device.SessionId, online.SessionId);
        Assert.Equal(driver.Now + TimeSpan.FromSeconds(3), driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void Per_device_timeout_overrides_the_configured_default()
    {
        var known = new DeviceRecord
        {
            TenantId = "default",
            DeviceId = "agent-42",
            DeviceName = "agent-42",
            Status = DeviceStatus.Offline,
            FirstSeenAt = GrainDriver.T0 - TimeSpan.FromDays(1),
            LastSeenAt = GrainDriver.T0 - TimeSpan.FromDays(1),
            StatusChangedAt = GrainDriver.T0 - TimeSpan.FromDays(1),
            Timeout = TimeSpan.FromSeconds(10),
            Version = 7,
            Sequence = 3,
        };
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(90) }, known);

        driver.Heartbeat();
        Assert.Equal(GrainDriver.T0 + TimeSpan.FromSeconds(10), driver.Grain.Deadline(driver.Policy));

        driver.Advance(TimeSpan.FromSeconds(10) - OneTick);
        Assert.Equal(GrainChange.None, driver.Expire());
        driver.Advance(OneTick);
        driver.Expire();

        Assert.Equal(DeviceStatus.Offline, driver.State.Status);
        Assert.Equal(StatusReason.Timeout, driver.Events[^1].Reason);
        Assert.Equal(TimeSpan.FromSeconds(10), driver.State.Timeout);
    }

    [Fact]
    public void Sequence_grows_by_one_with_every_event_of_the_device()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(3) });
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(3));
        driver.Expire();
        driver.Advance(TimeSpan.FromSeconds(1));
        driver.Heartbeat();
        driver.Grain.CommandResult(new CommandResult("cmd-1", true, "done"), driver.Now, driver.Events);
        driver.Heartbeat();
        driver.Grain.ChannelOpened();
        driver.CloseChannel();
        driver.Advance(driver.Policy.DisconnectGrace);
        driver.Expire();
        driver.Heartbeat();
        var lastSequence = driver.State.Sequence;
        driver.Remove();

        Assert.Equal(Enumerable.Range(1, driver.Events.Count).Select(i => (long)i), driver.Events.Select(e => e.Sequence));
        Assert.Equal(9, driver.Events.Count);
        Assert.Equal(lastSequence + 2, driver.Events[^1].Sequence);
    }

    [Fact]
    public void Removing_an_online_device_reports_it_offline_with_reason_removed_then_removed()
    {
        var driver = new GrainDriver();
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(2));
        driver.Heartbeat();
        var sessionId = driver.State.SessionId;
        var lastSeen = driver.Now;
        driver.Advance(TimeSpan.FromSeconds(1));

        var change = driver.Remove();

        Assert.Null(driver.Grain.State);
        Assert.Null(driver.Grain.Deadline(driver.Policy));
        Assert.True(change.IsDurable);
        Assert.True((change.Kind & ChangeKind.Removed) != 0);
        Assert.Equal(new SessionRecord(sessionId, GrainDriver.T0, driver.Now, StatusReason.Removed, 2), change.EndedSession);
        Assert.Collection(
            driver.Events.Skip(2),
            offline =>
            {
                Assert.Equal(DeviceEventType.Status, offline.Type);
                Assert.Equal(3, offline.Sequence);
                Assert.Equal(DeviceStatus.Offline, offline.Status);
                Assert.Equal(DeviceStatus.Online, offline.PreviousStatus);
                Assert.Equal(StatusReason.Removed, offline.Reason);
                Assert.Equal(sessionId, offline.SessionId);
            },
            removed =>
            {
                Assert.Equal(DeviceEventType.Removed, removed.Type);
                Assert.Equal(4, removed.Sequence);
                Assert.Equal(driver.Now, removed.Time);
                Assert.Equal(lastSeen, removed.LastSeenAt);
            });
    }

    [Fact]
    public void Removing_an_offline_device_emits_only_removed()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = TimeSpan.FromSeconds(3) });
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(3));
        driver.Expire();

        var change = driver.Remove();

        Assert.Null(driver.Grain.State);
        Assert.Null(change.EndedSession);
        Assert.True((change.Kind & ChangeKind.Removed) != 0);
        var removed = Assert.Single(driver.Events.Skip(3));
        Assert.Equal(DeviceEventType.Removed, removed.Type);
        Assert.Equal(4, removed.Sequence);
    }

    [Fact]
    public void Removing_an_unknown_device_does_nothing()
    {
        var driver = new GrainDriver();

        var change = driver.Remove();

        Assert.Equal(GrainChange.None, change);
        Assert.Empty(driver.Events);
        Assert.Null(driver.Grain.State);
    }

    [Fact]
    public void Heartbeat_after_removal_registers_the_device_again()
    {
        var driver = new GrainDriver();
        driver.Heartbeat();
        driver.Remove();
        driver.Advance(TimeSpan.FromSeconds(1));

        var device = driver.Heartbeat().Device!;

        Assert.Equal(1, device.Version);
        Assert.Equal(driver.Now, device.FirstSeenAt);
        Assert.Equal(DeviceEventType.Registered, driver.Events[^2].Type);
        Assert.Equal(DeviceEventType.Status, driver.Events[^1].Type);
    }

    [Fact]
    public void Command_result_is_recorded_as_an_event_with_the_next_sequence()
    {
        var driver = new GrainDriver();
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(1));

        var change = driver.Grain.CommandResult(new CommandResult("cmd-7", false, "disk full"), driver.Now, driver.Events);

        Assert.True(change.IsDurable);
        Assert.Equal(3, driver.State.Sequence);
        Assert.Equal(DeviceStatus.Online, driver.State.Status);
        var result = driver.Events[^1];
        Assert.Equal(DeviceEventType.CommandResult, result.Type);
        Assert.Equal(3, result.Sequence);
        Assert.Equal(driver.Now, result.Time);
        Assert.Equal("cmd-7", result.CommandId);
        Assert.False(result.Ok);
        Assert.Equal("disk full", result.Output);
    }

    [Fact]
    public void Command_result_of_an_unknown_device_is_not_recorded()
    {
        var driver = new GrainDriver();

        var change = driver.Grain.CommandResult(new CommandResult("cmd-7", true, null), driver.Now, driver.Events);

        Assert.Equal(GrainChange.None, change);
        Assert.Empty(driver.Events);
    }
}
