using System.Threading.Tasks.Sources;

namespace Presence.Agent.Simulation;

/// <summary>
/// One loop's wait for a time on a <see cref="TimeProvider"/>: a single timer re-armed per wait and a reusable
/// value-task source, so waiting allocates nothing (<c>Task.Delay</c> would allocate a timer and a task each time).
/// A waiting loop counts as idle in its <see cref="LoopActivity"/>; the wait ends early when the run stops.
/// The loop resumes on the timer's own callback (no second thread-pool dispatch per wait; with a driven clock, on the
/// thread that moved it, up to the loop's next socket wait); after a stop, on the thread pool, never inside the
/// <c>Cancel</c> that stopped the run.
/// </summary>
internal sealed class Alarm : IValueTaskSource, IDisposable
{
    private readonly ITimer _timer;
    private readonly LoopActivity _activity;
    private readonly CancellationToken _stop;
    private readonly CancellationTokenRegistration _stopping;
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = false };
    private int _armed;

    public Alarm(TimeProvider time, LoopActivity activity, CancellationToken stop)
    {
        _activity = activity;
        _stop = stop;
        _timer = time.CreateTimer(static state => ((Alarm)state!).Ring(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _stopping = stop.UnsafeRegister(static state => ((Alarm)state!).RingSoon(), this);
    }

    /// <summary>Waits <paramref name="delay"/> (more than zero) or until the run stops.</summary>
    public ValueTask WaitAsync(TimeSpan delay)
    {
        _core.Reset();
        Volatile.Write(ref _armed, 1);

        // Armed before the loop counts as idle: a clock moved by a test that saw it idle always rings it.
        _timer.Change(delay, Timeout.InfiniteTimeSpan);
        _activity.End();

        // A stop that came before the wait was armed found nothing to ring.
        if (_stop.IsCancellationRequested)
        {
            Ring();
        }

        return new ValueTask(this, _core.Version);
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _timer.Dispose();
    }

    /// <summary>
    /// Ends the wait: the loop is busy again from here, before its continuation runs, so a test that moved the clock
    /// and then awaits <see cref="LoopActivity.WhenIdleAsync"/> waits for it.
    /// </summary>
    private void Ring()
    {
        if (Interlocked.Exchange(ref _armed, 0) == 1)
        {
            _activity.Begin();
            _core.SetResult(true);
        }
    }

    /// <summary>Ends the wait from a stop: busy at once, resumed on the thread pool.</summary>
    private void RingSoon()
    {
        if (Interlocked.Exchange(ref _armed, 0) == 1)
        {
            _activity.Begin();
            ThreadPool.UnsafeQueueUserWorkItem(static alarm => alarm._core.SetResult(true), this, preferLocal: false);
        }
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
