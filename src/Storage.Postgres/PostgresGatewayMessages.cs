using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;
using Presence.Runtime.Cluster;

namespace Presence.Storage.Postgres;

/// <summary>Messages between gateways as <c>NOTIFY presence_gateways</c> (PostgreSQL caps a payload below 8000 bytes).</summary>
public sealed partial class PostgresGatewayMessages(NpgsqlDataSource data, PostgresPresenceStore store, ILogger<PostgresGatewayMessages> log)
    : IGatewayMessages, IHostedService, IAsyncDisposable
{
    public const string Channel = "presence_gateways";

    private static readonly TimeSpan ListenTimeout = TimeSpan.FromSeconds(10);

    private readonly CancellationTokenSource _stopping = new();
    private Action<string> _handler = static _ => { };
    private Task _listening = Task.CompletedTask;

    public int MaxMessageBytes => 7_900;

    public void OnMessage(Action<string> handler) => _handler = handler;

    public async ValueTask PublishAsync(string message, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(System.Text.Encoding.UTF8.GetByteCount(message), MaxMessageBytes, nameof(message));
        await store.Read(async () =>
        {
            await using var command = data.CreateCommand("SELECT pg_notify(@channel, @message)");
            command.Parameters.AddWithValue("channel", Channel);
            command.Parameters.AddWithValue("message", message);
            await command.ExecuteNonQueryAsync(cancellationToken);
            return true;
        });
    }

    /// <summary>Starts listening, and waits (boundedly) until it does: a message sent after start-up must not be missed.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _listening = PostgresListener.RunAsync(
            data,
            Channel,
            payload => _handler(payload),
            _ =>
            {
                listening.TrySetResult();
                return Task.CompletedTask;
            },
            error => LogListenFailed(log, error.Message),
            _stopping.Token);
        try
        {
            await listening.Task.WaitAsync(ListenTimeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            LogListenFailed(log, $"not listening after {ListenTimeout.TotalSeconds} s; still trying");
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await DisposeAsync();

    public async ValueTask DisposeAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        await _listening;
    }

    [LoggerMessage(EventId = 3110, Level = LogLevel.Warning, Message = "Gateway messages: listening failed ({Reason}); retrying")]
    private static partial void LogListenFailed(ILogger logger, string reason);
}
