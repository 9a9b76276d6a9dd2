namespace Presence.Runner.Hosting;

/// <summary>
/// A cluster on one database, every process on 127.0.0.1: silos (started one after the other, each once it joined)
/// and gateways in cluster client mode (each once <c>/healthz</c> answers). Stopped gateways first, then silos.
/// </summary>
internal sealed class LocalCluster : IAsyncDisposable
{
    private readonly List<SiloProcess> _silos = [];
    private readonly List<ServerProcess> _gateways = [];

    public IReadOnlyList<SiloProcess> Silos => _silos;

    public IReadOnlyList<ServerProcess> Gateways => _gateways;

    /// <summary>The processes whose CPU is the cluster's cost (the database's is counted apart).</summary>
    public IEnumerable<(string Name, int Pid)> Processes =>
        Gateways.Select(g => (g.Name, g.Pid)).Concat(Silos.Select(s => (s.Name, s.Pid)));

    public static async Task<LocalCluster> StartAsync(
        BenchPaths paths, string connectionString, int silos, int gateways, IReadOnlyList<string> gatewayArgs, string logDir, CancellationToken cancellationToken)
    {
        var cluster = new LocalCluster();
        try
        {
            var storage = "--ConnectionStrings:Presence=" + connectionString;
            for (var i = 1; i <= silos; i++)
            {
                cluster._silos.Add(await SiloProcess.StartAsync($"silo{i}", paths.Silo, [storage], logDir, cancellationToken));
            }

            for (var i = 1; i <= gateways; i++)
            {
                cluster._gateways.Add(await ServerProcess.StartAsync(
                    $"gateway{i}-cluster", paths.Gateway, [.. gatewayArgs, "--Presence:Cluster:Mode=client", storage], logDir, cancellationToken));
            }

            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    /// <summary>Gateways first (no new calls), then the silos (SIGTERM: each hands off what it owns, the last one keeps it).</summary>
    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(Gateways.Select(g => g.StopAsync()));
        foreach (var silo in Silos)
        {
            await silo.StopAsync();
        }
    }
}
