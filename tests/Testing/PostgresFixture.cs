namespace Presence.Testing;

/// <summary>
/// An xunit fixture (class or collection) that starts one <see cref="PostgresServer"/> before the tests that share it
/// and disposes it after them.
/// </summary>
public sealed class PostgresFixture : IAsyncLifetime
{
    private PostgresServer? _server;

    /// <summary>The shared server; tests that stop or crash it start it again before they end.</summary>
    public PostgresServer Server => _server ?? throw new InvalidOperationException("The server has not started yet.");

    public async Task InitializeAsync() => _server = await PostgresServer.StartAsync();

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }
}
