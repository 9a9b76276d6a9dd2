namespace Presence.Agent.Simulation;

/// <summary>
/// Counts the loops of a run that are doing something rather than waiting for a time on the run's
/// <see cref="TimeProvider"/>. When time is driven (tests), <see cref="WhenIdleAsync"/> is the phase to await after
/// moving the clock: every heartbeat that fell due has been sent and answered.
/// </summary>
internal sealed class LoopActivity
{
    private readonly Lock _lock = new();
    private int _busy;
    private TaskCompletionSource? _idle;

    /// <param name="busy">Loops already running (the run's own).</param>
    public LoopActivity(int busy) => _busy = busy;

    public void Begin() => Interlocked.Increment(ref _busy);

    public void End()
    {
        if (Interlocked.Decrement(ref _busy) == 0)
        {
            lock (_lock)
            {
                _idle?.TrySetResult();
                _idle = null;
            }
        }
    }

    /// <summary>Completes once no loop is busy (at once if none is).</summary>
    public Task WhenIdleAsync()
    {
        lock (_lock)
        {
            if (Volatile.Read(ref _busy) == 0)
            {
                return Task.CompletedTask;
            }

            _idle ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var idle = _idle.Task;

            // The last loop may have ended between the check and the new task: it found none to complete.
            if (Volatile.Read(ref _busy) == 0)
            {
                _idle.TrySetResult();
                _idle = null;
            }

            return idle;
        }
    }
}
