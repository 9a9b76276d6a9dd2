using System.Text.RegularExpressions;
using Presence.Testing;

namespace Presence.Cluster.Tests.Processes;

/// <summary>A cluster silo as a child process (<c>dotnet Presence.Silo.dll</c>), started and awaited until it joined the cluster.</summary>
internal sealed partial class SiloProcess : IAsyncDisposable
{
    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(60);

    private readonly PresenceProcess _process;

    private SiloProcess(PresenceProcess process, string siloId, string address)
    {
        _process = process;
        SiloId = siloId;
        Address = address;
    }

    public string Name => _process.Name;

    /// <summary>The id the silo logged when it joined (its row in <c>presence_silos</c>).</summary>
    public string SiloId { get; }

    /// <summary>The <c>host:port</c> it advertises to gateways.</summary>
    public string Address { get; }

    public bool HasExited => _process.HasExited;

    public string Output => _process.Output;

    /// <summary>Starts a silo on <paramref name="connectionString"/> with <paramref name="settings"/> (<c>--Key=Value</c>) and returns once it logged that it joined.</summary>
    public static async Task<SiloProcess> StartAsync(string name, string connectionString, IEnumerable<string> settings)
    {
        var process = PresenceProcess.Start(
            name, PresenceProcess.BuildOutput("Silo", "Presence.Silo.dll"), [$"--ConnectionStrings:Presence={connectionString}", .. settings]);
        try
        {
            var joined = await process.WaitForLineAsync(Joined(), JoinTimeout);
            return new SiloProcess(process, joined.Groups["id"].Value, joined.Groups["address"].Value);
        }
        catch
        {
            await process.DisposeAsync();
            throw;
        }
    }

    /// <summary><c>kill -9</c>: the silo neither hands off nor releases anything; its leases must expire.</summary>
    public Task KillAsync() => _process.KillAsync();

    /// <summary>Completes at this silo's next membership change: it acquired, handed off, declared a silo dead or left.</summary>
    public Task MembershipChangedAsync() => _process.NextLineAsync(MembershipChange());

    /// <summary>SIGTERM: the silo drains (hands its partitions off) and must exit with 0 within <paramref name="timeout"/>.</summary>
    public async Task TerminateAsync(TimeSpan timeout)
    {
        var exitCode = await _process.TerminateAsync(timeout);
        Assert.True(exitCode == 0, $"{Name} exited with {exitCode} after SIGTERM:\n{Output}");
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();

    [GeneratedRegex(@"Silo (?<id>\S+) joined the cluster at (?<address>\S+)")]
    private static partial Regex Joined();

    [GeneratedRegex(@"ClusterMember\[(1202|1203|1204|1209)\]")]
    private static partial Regex MembershipChange();
}
