using System.Net;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Presence.Runtime.Cluster;
using Presence.Runtime.Options;
using Presence.Runtime.Remoting;
using Presence.Runtime.Silo;

namespace Presence.Silo.Hosting;

/// <summary>
/// Serves gateways on <c>Presence:Silo:Endpoint</c> and knows the address the silo advertises in the membership table.
/// Started before the silo joins (gateways must be able to reach it once it owns partitions), stopped after it drained.
/// </summary>
public sealed partial class SiloListener(
    SiloRuntime silo, IOptions<SiloOptions> options, IOptions<ClusterOptions> cluster, ILoggerFactory logs) : IHostedService, IAsyncDisposable
{
    private SiloServer? _server;

    /// <summary>The advertised <c>host:port</c>; set once started.</summary>
    public string Address { get; private set; } = "";

    public IPEndPoint? Bound { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        SiloEndpoint.TryParse(options.Value.Endpoint, out var bind);
        _server = new SiloServer(silo, silo.SiloId, cluster.Value.Secret, logs.CreateLogger<SiloServer>());
        Bound = _server.Start(bind);
        Address = SiloEndpoint.Advertised(Bound, options.Value.AdvertisedHost);
        LogListening(logs.CreateLogger<SiloListener>(), silo.SiloId, Bound.ToString(), Address);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => _server?.StopAsync(cancellationToken) ?? Task.CompletedTask;

    /// <summary>Drops every gateway connection at once, answering nothing (what a crash looks like to gateways).</summary>
    public void Abort() => _server?.Abort();

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    [LoggerMessage(EventId = 1301, Level = LogLevel.Information, Message = "Silo {SiloId} listens for gateways on {Bound}, advertised as {Address}")]
    private static partial void LogListening(ILogger logger, string siloId, string bound, string address);
}
