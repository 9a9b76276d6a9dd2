using Presence.Agent.Simulation;

namespace Presence.Agent.Tests.Simulation;

/// <summary>
/// The churn model and the schedule together, on paper: a fleet's timelines drawn with the simulator's own schedule
/// (no network), then measured the way the gateway sees them (offline once a device is silent for timeout_s).
/// </summary>
public sealed class ChurnModelTests
{
    private const long Frequency = 1000;

    [Theory]
    [InlineData(5, 30, 90)]
    [InlineData(10, 1, 3)]
    [InlineData(30, 1, 3)]
    [InlineData(50, 2, 5)]
    [InlineData(80, 1, 3)]
    public void The_share_offline_at_the_gateway_is_the_churn_percentage(double percent, double interval, double timeout)
    {
        var model = ChurnModel.For(percent, interval, timeout);

        var fleet = Simulate(model, devices: 2000, cycles: 8);

        Assert.InRange(fleet.OfflineShare * 100, percent - 2.5, percent + 2.5);
        Assert.InRange(fleet.SilencesPerDevice, 2, 20);
    }

    [Theory]
    [InlineData(5, 2000, 10_000)]
    [InlineData(20, 2000, 4000)]
    [InlineData(40, 1000, 2000)]
    public void With_a_rate_the_whole_fleet_sends_that_many_heartbeats_per_second(double percent, double rate, int devices)
    {
        var interval = ChurnModel.For(percent, 1, 3).IntervalFor(rate, devices);
        Assert.NotNull(interval);
        var model = ChurnModel.For(percent, interval.Value, 3);

        var fleet = Simulate(model, devices, cycles: 8);

        Assert.InRange(fleet.HeartbeatsPerSecond, rate * 0.97, rate * 1.03);
        Assert.InRange(model.RateOf(devices), rate * 0.999, rate * 1.001);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(20)]
    [InlineData(50)]
    public void The_fleet_churns_at_its_steady_share_soon_after_the_first_timeout_without_a_wave(double percent)
    {
        // Interval 2 s, timeout 5 s: from about 10 s on, every 5-second window has the churn's share offline.
        var model = ChurnModel.For(percent, 2, 5);
        for (var window = 10.0; window < 60; window += 5)
        {
            var share = Simulate(model, devices: 4000, window, window + 5).OfflineShare;
            Assert.InRange(share * 100, percent - 4, percent + 4);
        }
    }

    [Fact]
    public void A_rate_below_one_heartbeat_per_device_and_cycle_cannot_be_met()
    {
        // 1000 devices churning over a cycle of about 15 s send at least about 67 heartbeats/s.
        var model = ChurnModel.For(20, 1, 3);

        Assert.Null(model.IntervalFor(10, 1000));
        Assert.Null(ChurnModel.For(60, 1, 3).IntervalFor(1000, 1000));
        Assert.Equal(0.5, ChurnModel.For(0, 1, 3).IntervalFor(2000, 1000));
    }

    [Fact]
    public void No_churn_never_silences_a_device()
    {
        var model = ChurnModel.For(0, 1, 3);

        Assert.False(model.Churns);
        Assert.Equal(0, model.SilenceChance);
        Assert.Equal(0, model.FirstSilenceChance);
        Assert.Equal(0, Simulate(model, devices: 100, cycles: 2).OfflineShare);
    }

    [Fact]
    public void Every_silence_outlasts_the_gateway_timeout()
    {
        foreach (var percent in new[] { 1.0, 10, 50, 90, 100 })
        {
            var model = ChurnModel.For(percent, 1, 90);
            Assert.True(model.Silence(0) >= 90 * 1.5, $"--churn {percent}: {model.Silence(0)} s");
        }
    }

    [Fact]
    public void Churn_above_95_percent_acts_as_95()
    {
        Assert.Equal(ChurnModel.For(95, 1, 3).MeanOffline, ChurnModel.For(100, 1, 3).MeanOffline);
        Assert.InRange(Simulate(ChurnModel.For(100, 1, 3), devices: 1000, cycles: 4).OfflineShare, 0.92, 0.98);
    }

    [Fact]
    public void First_heartbeats_spread_evenly_over_the_first_interval()
    {
        var schedule = new FleetSchedule(Frequency, 30, 0.1, ChurnModel.For(0, 30, 90), devices: 3000);
        var random = 7UL;
        var tenths = new int[10];
        for (var device = 0; device < 3000; device++)
        {
            var due = schedule.FirstDue(0, device, ref random);
            Assert.InRange(due, 0, schedule.Interval - 1);
            tenths[due * 10 / schedule.Interval]++;
        }

        Assert.All(tenths, count => Assert.InRange(count, 290, 310));
    }

    [Fact]
    public void The_next_heartbeat_comes_an_interval_later_with_jitter_and_never_to_catch_up()
    {
        var schedule = new FleetSchedule(Frequency, 10, 0.1, ChurnModel.For(0, 10, 30), devices: 1);
        var random = 11UL;
        var gaps = Enumerable.Range(0, 10_000).Select(_ => schedule.NextDue(0, 0, ref random)).ToArray();

        Assert.InRange(gaps.Min(), 9_000, 9_100);
        Assert.InRange(gaps.Max(), 10_900, 11_000);
        Assert.InRange(gaps.Average(), 9_950, 10_050);

        // A heartbeat answered long after its time (the run fell behind): the next one is due now, not in the past.
        Assert.Equal(50_000, schedule.NextDue(0, 50_000, ref random));
    }

    /// <summary>Draws every device's heartbeats with the simulator's schedule (all answered), then measures past the first cycles.</summary>
    private static (double OfflineShare, double HeartbeatsPerSecond, double SilencesPerDevice) Simulate(ChurnModel model, int devices, int cycles)
    {
        var cycle = model.Churns ? model.Cycle : model.Interval * 10;
        return Simulate(model, devices, cycle * 2, cycle * (2 + cycles));
    }

    /// <summary>Draws every device's heartbeats from time 0 (all answered) and measures the window [from, to), seconds.</summary>
    private static (double OfflineShare, double HeartbeatsPerSecond, double SilencesPerDevice) Simulate(ChurnModel model, int devices, double fromSeconds, double toSeconds)
    {
        var schedule = new FleetSchedule(Frequency, model.Interval, 0.1, model, devices);
        var from = schedule.Ticks(fromSeconds);
        var to = schedule.Ticks(toSeconds);
        var random = 20261122UL;
        long offline = 0, heartbeats = 0, silences = 0;
        for (var device = 0; device < devices; device++)
        {
            var due = schedule.FirstDue(0, device, ref random);
            var first = true;
            while (due < to)
            {
                if (due >= from)
                {
                    heartbeats++;
                }

                long next;
                if (schedule.GoesSilent(first, ref random))
                {
                    next = schedule.SilenceEnd(due, due, first, ref random);
                    silences++;
                }
                else
                {
                    next = schedule.NextDue(due, due, ref random);
                }

                // Offline from timeout_s after this heartbeat until the next one, counted inside [from, to).
                var offlineFrom = Math.Max(due + schedule.Timeout, from);
                var offlineTo = Math.Min(next, to);
                offline += Math.Max(0, offlineTo - offlineFrom);
                due = next;
                first = false;
            }
        }

        return (offline / (double)(devices * (to - from)), heartbeats / schedule.Seconds(to - from), silences / (double)devices);
    }
}
