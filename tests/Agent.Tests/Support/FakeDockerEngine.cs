using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Presence.Agent.Tests.Support;

/// <summary>
/// A Docker Engine API on a temporary unix socket (Kestrel), answering <c>GET /containers/json</c> with what the test
/// sets: a JSON body, or an error status.
/// </summary>
public sealed class FakeDockerEngine : IAsyncDisposable
{
    private readonly WebApplication _app;
    private volatile string _body = "[]";
    private volatile int _status = StatusCodes.Status200OK;

    private FakeDockerEngine(string socketPath)
    {
        SocketPath = socketPath;
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenUnixSocket(socketPath));
        _app = builder.Build();
        _app.MapGet("/containers/json", (HttpContext context) =>
        {
            Queries.Add(context.Request.QueryString.Value ?? "");
            return Results.Text(_body, "application/json", statusCode: _status);
        });
    }

    /// <summary>Short, under /tmp: a unix socket path must fit in 108 bytes.</summary>
    public string SocketPath { get; }

    public System.Collections.Concurrent.ConcurrentBag<string> Queries { get; } = [];

    public static async Task<FakeDockerEngine> StartAsync()
    {
        var engine = new FakeDockerEngine(Path.Combine("/tmp", $"pa-docker-{Guid.NewGuid():N}"[..24] + ".sock"));
        await engine._app.StartAsync();
        return engine;
    }

    public void Answer(string json) => (_body, _status) = (json, StatusCodes.Status200OK);

    public void Fail(int status, string body = """{"message":"engine error"}""") => (_body, _status) = (body, status);

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        File.Delete(SocketPath);
    }
}
