using Presence.Agent.Simulation;
using Presence.Testing;

namespace Presence.Agent.Tests.Simulation;

/// <summary>The simulator's waits on a driven clock, and the idle phase a test awaits after moving it.</summary>
public sealed class AlarmTests
{
    [Fact]
    public async Task An_alarm_rings_when_the_clock_reaches_its_time_and_the_loop_is_idle_while_it_waits()
    {
        var time = new ManualTimeProvider();
        var activity = new LoopActivity(busy: 1);
        using var stop = new CancellationTokenSource();
        using var alarm = new Alarm(time, activity, stop.Token);

        var wait = alarm.WaitAsync(TimeSpan.FromSeconds(1)).AsTask();
        Assert.True(activity.WhenIdleAsync().IsCompleted);

        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.False(wait.IsCompleted);

        time.Advance(TimeSpan.FromMilliseconds(1));
        await wait.WaitAsync(TimeSpan.FromSeconds(10));
        var idle = activity.WhenIdleAsync();
        Assert.False(idle.IsCompleted, "the loop is busy again once its alarm rang");

        activity.End();
        await idle.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task An_alarm_is_reused_wait_after_wait()
    {
        var time = new ManualTimeProvider();
        var activity = new LoopActivity(busy: 1);
        using var stop = new CancellationTokenSource();
        using var alarm = new Alarm(time, activity, stop.Token);

        for (var i = 0; i < 3; i++)
        {
            var wait = alarm.WaitAsync(TimeSpan.FromSeconds(1));
            time.Advance(TimeSpan.FromSeconds(1));
            await wait.AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        }

        Assert.False(activity.WhenIdleAsync().IsCompleted);
    }

    [Fact]
    public async Task Stopping_the_run_ends_a_wait_at_once_even_one_armed_after_the_stop()
    {
        var time = new ManualTimeProvider();
        var activity = new LoopActivity(busy: 1);
        using var stop = new CancellationTokenSource();
        using var alarm = new Alarm(time, activity, stop.Token);

        var wait = alarm.WaitAsync(TimeSpan.FromHours(1)).AsTask();
        await stop.CancelAsync();
        await wait.WaitAsync(TimeSpan.FromSeconds(10));

        await alarm.WaitAsync(TimeSpan.FromHours(1)).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Idle_waits_for_every_busy_loop()
    {
        var activity = new LoopActivity(busy: 2);
        var idle = activity.WhenIdleAsync();

        activity.End();
        Assert.False(idle.IsCompleted);
        activity.End();
        await idle.WaitAsync(TimeSpan.FromSeconds(10));

        activity.Begin();
        Assert.False(activity.WhenIdleAsync().IsCompleted);
    }
}
