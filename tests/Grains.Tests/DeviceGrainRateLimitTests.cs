using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

public sealed class DeviceGrainRateLimitTests
{
    private static GrainDriver Limited(int perMinute, TimeSpan? timeout = null) =>
        new(new DevicePolicy { HeartbeatsPerMinute = perMinute, DefaultTimeout = timeout ?? TimeSpan.FromSeconds(90) });

    [Fact]
    public void Heartbeats_up_to_the_limit_are_accepted_then_rate_limited_until_the_window_ends()
    {
        var driver = Limited(3);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HeartbeatOutcome.Accepted, driver.Heartbeat().Outcome);
            driver.Advance(TimeSpan.FromSeconds(10));
        }

        var limited = driver.Heartbeat(null, out var change);

        Assert.Equal(HeartbeatOutcome.RateLimited, limited.Outcome);
        Assert.Null(limited.Device);
        Assert.Equal(TimeSpan.FromSeconds(30), limited.RetryAfter);
        Assert.Equal(GrainChange.None, change);

        driver.Advance(TimeSpan.FromSeconds(29));
        Assert.Equal(TimeSpan.FromSeconds(1), driver.Heartbeat().RetryAfter);

        driver.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(HeartbeatOutcome.Accepted, driver.Heartbeat().Outcome);
    }

    [Fact]
    public void Rate_limited_heartbeat_changes_nothing()
    {
        var driver = Limited(2);
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(1));
        driver.Heartbeat(new HeartbeatInput("agent-42", Platform: "linux"));
        var before = driver.State;
        var events = driver.Events.Count;
        driver.Advance(TimeSpan.FromSeconds(1));

        var limited = driver.Heartbeat(new HeartbeatInput("agent-42", DeviceName: "renamed", Platform: "docker",
            Metrics: new MetricSet(["cpu_pct"], [99])));

        Assert.Equal(HeartbeatOutcome.RateLimited, limited.Outcome);
        Assert.Same(before, driver.State);
        Assert.Equal(2, driver.State.Version);
        Assert.Equal(before.LastSeenAt, driver.State.LastSeenAt);
        Assert.Equal(events, driver.Events.Count);
    }

    [Fact]
    public void Rate_limited_heartbeat_does_not_bring_an_offline_device_online()
    {
        var driver = Limited(2, TimeSpan.FromSeconds(3));
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(1));
        driver.Heartbeat();
        driver.Advance(TimeSpan.FromSeconds(3));
        driver.Expire();
        var events = driver.Events.Count;
        driver.Advance(TimeSpan.FromSeconds(1));

        var limited = driver.Heartbeat();

        Assert.Equal(HeartbeatOutcome.RateLimited, limited.Outcome);
        Assert.Equal(TimeSpan.FromSeconds(55), limited.RetryAfter);
        Assert.Equal(DeviceStatus.Offline, driver.State.Status);
        Assert.Equal(events, driver.Events.Count);
    }

    [Fact]
    public void Rate_limited_heartbeat_does_not_cancel_a_running_disconnect_grace()
    {
        var driver = Limited(1);
        driver.Heartbeat();
        driver.Grain.ChannelOpened();
        driver.CloseChannel();
        var closedAt = driver.Now;
        driver.Advance(TimeSpan.FromSeconds(1));

        Assert.Equal(HeartbeatOutcome.RateLimited, driver.Heartbeat().Outcome);

        Assert.Equal(closedAt, driver.Grain.DisconnectedAt);
        driver.AdvanceTo(closedAt + driver.Policy.DisconnectGrace);
        driver.Expire();
        Assert.Equal(DeviceStatus.Offline, driver.State.Status);
        Assert.Equal(StatusReason.Disconnected, driver.Events[^1].Reason);
    }

    [Fact]
    public void First_heartbeat_of_a_new_device_counts_against_the_limit()
    {
        var driver = Limited(1);

        Assert.Equal(HeartbeatOutcome.Accepted, driver.Heartbeat().Outcome);
        Assert.Equal(HeartbeatOutcome.RateLimited, driver.Heartbeat().Outcome);
        Assert.Equal(TimeSpan.FromMinutes(1), driver.Heartbeat().RetryAfter);
    }
}
