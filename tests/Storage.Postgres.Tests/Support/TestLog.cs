using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Presence.Storage.Postgres.Tests.Support;

/// <summary>
/// The store's logger: keeps every entry (tests assert on event ids) and echoes it to the test's output, which
/// <c>dotnet test</c> shows for a failing test.
/// </summary>
internal sealed class TestLog(ITestOutputHelper? output, string name) : ILogger<PostgresPresenceStore>
{
    private readonly ConcurrentQueue<(LogLevel Level, EventId Id, string Message)> _entries = new();

    public string Name { get; } = name;

    public IReadOnlyList<(LogLevel Level, EventId Id, string Message)> Entries => [.. _entries];

    public bool Logged(int eventId) => _entries.Any(e => e.Id.Id == eventId);

    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

    public bool IsEnabled(LogLevel logLevel) => true;

    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
    {
        var message = formatter(state, exception) + (exception is null ? "" : " | " + exception.GetType().Name + ": " + exception.Message);
        _entries.Enqueue((logLevel, eventId, message));
        try
        {
            output?.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} [{Name}] {logLevel} {eventId.Id}: {message}");
        }
        catch (InvalidOperationException)
        {
            // The test has ended; background work may still log.
        }
    }
}
