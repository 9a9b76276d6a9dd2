using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

public sealed class DeviceGrainChannelTests
{
    private static readonly TimeSpan OneTick = TimeSpan.FromTicks(1);
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private static GrainDriver OnlineWithChannel()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = Timeout, DisconnectGrace = Grace });
        driver.Heartbeat();
        driver.Grain.ChannelOpened();
        return driver;
    }

    [Fact]
    public void Open_channel_keeps_the_device_online_long_past_its_timeout()
    {
        var driver = OnlineWithChannel();

        Assert.Null(driver.Grain.Deadline(driver.Policy));
        driver.Advance(TimeSpan.FromHours(2));

        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Equal(DeviceStatus.Online, driver.State.Status);
        Assert.Equal(2, driver.Events.Count);
    }

    [Fact]
    public void Closing_the_last_channel_makes_the_device_offline_after_the_grace_with_reason_disconnected()
    {
        var driver = OnlineWithChannel();
        driver.Advance(TimeSpan.FromMinutes(5));
        var closedAt = driver.Now;

        driver.CloseChannel();

        Assert.Equal(closedAt, driver.Grain.DisconnectedAt);
        Assert.Equal(closedAt + Grace, driver.Grain.Deadline(driver.Policy));
        driver.AdvanceTo(closedAt + Grace - OneTick);
        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Equal(DeviceStatus.Online, driver.State.Status);

        driver.Advance(OneTick);
        var change = driver.Expire();

        Assert.Equal(DeviceStatus.Offline, driver.State.Status);
        Assert.Null(driver.Grain.DisconnectedAt);
        var offline = driver.Events[^1];
        Assert.Equal(DeviceEventType.Status, offline.Type);
        Assert.Equal(StatusReason.Disconnected, offline.Reason);
        Assert.Equal(DeviceStatus.Online, offline.PreviousStatus);
        Assert.Equal(3, offline.Sequence);
        Assert.Equal(StatusReason.Disconnected, change.EndedSession!.EndReason);
    }

    [Fact]
    public void Reopening_a_channel_within_the_grace_cancels_the_disconnect()
    {
        var driver = OnlineWithChannel();
        driver.CloseChannel();
        var closedAt = driver.Now;
        driver.Advance(Grace - TimeSpan.FromSeconds(1));

        driver.Grain.ChannelOpened();

        Assert.Null(driver.Grain.DisconnectedAt);
        Assert.Null(driver.Grain.Deadline(driver.Policy));
        driver.AdvanceTo(closedAt + Grace + TimeSpan.FromMinutes(10));
        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Equal(DeviceStatus.Online, driver.State.Status);

        driver.CloseChannel();
        Assert.Equal(driver.Now + Grace, driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void Heartbeat_within_the_grace_cancels_the_disconnect_and_restores_the_timeout()
    {
        var driver = OnlineWithChannel();
        driver.CloseChannel();
        driver.Advance(TimeSpan.FromSeconds(1));
        var lastSeen = driver.Now;

        driver.Heartbeat();

        Assert.Null(driver.Grain.DisconnectedAt);
        Assert.Equal(lastSeen + Timeout, driver.Grain.Deadline(driver.Policy));
        driver.AdvanceTo(lastSeen + Grace);
        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Equal(DeviceStatus.Online, driver.State.Status);

        driver.AdvanceTo(lastSeen + Timeout);
        driver.Expire();
        Assert.Equal(DeviceStatus.Offline, driver.State.Status);
        Assert.Equal(StatusReason.Timeout, driver.Events[^1].Reason);
    }

    [Fact]
    public void Grace_starts_only_when_the_last_of_several_channels_closes()
    {
        var driver = OnlineWithChannel();
        driver.Grain.ChannelOpened();

        driver.CloseChannel();
        Assert.Equal(1, driver.Grain.OpenChannels);
        Assert.Null(driver.Grain.Deadline(driver.Policy));

        driver.Advance(TimeSpan.FromMinutes(3));
        driver.CloseChannel();
        Assert.Equal(0, driver.Grain.OpenChannels);
        Assert.Equal(driver.Now + Grace, driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void Closing_a_channel_that_was_never_opened_changes_nothing()
    {
        var driver = new GrainDriver(new DevicePolicy { DefaultTimeout = Timeout, DisconnectGrace = Grace });
        driver.Heartbeat();

        driver.CloseChannel();

        Assert.Equal(0, driver.Grain.OpenChannels);
        Assert.Null(driver.Grain.DisconnectedAt);
        Assert.Equal(GrainDriver.T0 + Timeout, driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void Channel_of_an_unknown_device_is_ignored()
    {
        var driver = new GrainDriver();

        driver.Grain.ChannelOpened();

        Assert.Equal(0, driver.Grain.OpenChannels);
        Assert.Null(driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void Removing_a_device_forgets_its_channels()
    {
        var driver = OnlineWithChannel();

        driver.Remove();

        Assert.Equal(0, driver.Grain.OpenChannels);
        Assert.Null(driver.Grain.DisconnectedAt);
    }
}
