using Microsoft.Extensions.Options;
using Presence.Cluster.Tests.Support;
using Presence.Testing;

namespace Presence.Cluster.Tests;

/// <summary>What a silo refuses to start with: each message names the key to fix.</summary>
[Collection(ClusterCollection.Name)]
public sealed class SiloConfigurationTests(PostgresFixture postgres)
{
    [Theory]
    [InlineData("0.0.0.0:0", null, "Presence:Cluster:Secret")]
    [InlineData("localhost:7070", null, "Presence:Silo:Endpoint must be host:port with an IP address")]
    [InlineData("127.0.0.1:0", "short", "Presence:Cluster:Secret must be at least 16 characters")]
    public async Task A_silo_reachable_beyond_loopback_needs_the_cluster_secret_and_bad_settings_are_named(string endpoint, string? secret, string message)
    {
        var settings = new Dictionary<string, string>
        {
            ["ConnectionStrings:Presence"] = await postgres.Server.CreateDatabaseAsync(),
            ["Presence:Silo:Endpoint"] = endpoint,
        };
        if (secret is not null)
        {
            settings["Presence:Cluster:Secret"] = secret;
        }

        var refused = await Assert.ThrowsAsync<OptionsValidationException>(() => TestSilo.StartAsync(settings, new ManualTimeProvider()));

        Assert.Contains(message, refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task With_the_secret_a_silo_listens_on_every_interface_and_advertises_the_configured_host()
    {
        var silo = await TestSilo.StartAsync(new Dictionary<string, string>
        {
            ["ConnectionStrings:Presence"] = await postgres.Server.CreateDatabaseAsync(),
            ["Presence:Silo:Endpoint"] = "0.0.0.0:0",
            ["Presence:Silo:AdvertisedHost"] = "silo-7.internal",
            ["Presence:Cluster:Secret"] = "a-cluster-secret-of-some-length",
        }, new ManualTimeProvider());
        try
        {
            Assert.Equal($"silo-7.internal:{silo.Listener.Bound!.Port}", silo.Listener.Address);
        }
        finally
        {
            await silo.StopAsync();
        }
    }
}
