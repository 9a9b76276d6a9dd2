using Microsoft.Extensions.Logging;

namespace Presence.Agent.Tests.Support;

/// <summary>One log line as the agent wrote it, with its structured values.</summary>
public sealed record LogEntry(int EventId, LogLevel Level, string Message, IReadOnlyDictionary<string, object?> Values)
{
    public double Seconds => Convert.ToDouble(Values["Seconds"], System.Globalization.CultureInfo.InvariantCulture);

    public string? Why => Values.TryGetValue("Why", out var why) ? why as string : null;

    public override string ToString() => $"[{EventId}] {Message}";
}

/// <summary>
/// Records the agent's log, which is how a test follows what the agent does: every wait is announced once its timer
/// exists (<c>AgentLog.NextHeartbeat</c>), so a test awaits that line and then drives the clock. Waits for a line are
/// bounded (a broken agent fails the test instead of hanging it) and fail early if the agent itself ended.
/// </summary>
public sealed class LogRecorder : ILoggerProvider
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);
    private readonly Lock _lock = new();
    private readonly List<LogEntry> _entries = [];
    private TaskCompletionSource _added = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _cursor;

    /// <summary>The agent's run; a wait for a line fails at once when it has ended.</summary>
    public Task? Agent { get; set; }

    public IReadOnlyList<LogEntry> Entries
    {
        get
        {
            lock (_lock)
            {
                return [.. _entries];
            }
        }
    }

    public int Count(int eventId) => Entries.Count(e => e.EventId == eventId);

    /// <summary>The next line with <paramref name="eventId"/> after the ones already taken (lines of other ids are passed over).</summary>
    public async Task<LogEntry> NextAsync(int eventId)
    {
        using var timeout = new CancellationTokenSource(Bound);
        while (true)
        {
            Task added;
            lock (_lock)
            {
                while (_cursor < _entries.Count)
                {
                    var entry = _entries[_cursor++];
                    if (entry.EventId == eventId)
                    {
                        return entry;
                    }
                }

                added = _added.Task;
            }

            var agent = Agent ?? new TaskCompletionSource().Task;
            try
            {
                if (await Task.WhenAny(added, agent).WaitAsync(timeout.Token) == agent && !added.IsCompleted)
                {
                    await agent;
                    Assert.Fail($"the agent ended while a test waited for log event {eventId}; log:\n{string.Join('\n', Entries)}");
                }
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                Assert.Fail($"no log event {eventId} within {Bound.TotalSeconds} s; log:\n{string.Join('\n', Entries)}");
            }
        }
    }

    /// <summary>The next wait the agent began: its length in seconds and why (interval, retry, retry after, rate limited, token renewal).</summary>
    public async Task<(double Seconds, string Why)> NextWaitAsync()
    {
        var entry = await NextAsync(AgentLog.NextHeartbeatId);
        return (entry.Seconds, entry.Why!);
    }

    public ILogger CreateLogger(string categoryName) => new Recorder(this);

    public void Dispose()
    {
    }

    private void Add(LogEntry entry)
    {
        TaskCompletionSource added;
        lock (_lock)
        {
            _entries.Add(entry);
            added = _added;
            _added = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        added.SetResult();
    }

    private sealed class Recorder(LogRecorder owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var values = state is IReadOnlyList<KeyValuePair<string, object?>> pairs
                ? pairs.ToDictionary(p => p.Key, p => p.Value)
                : [];
            owner.Add(new LogEntry(eventId.Id, logLevel, formatter(state, exception), values));
        }
    }
}
