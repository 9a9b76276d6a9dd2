using Microsoft.Extensions.Options;

namespace Presence.Runtime.Tests.Silo;

public sealed class SiloConfigurationTests
{
    [Fact]
    public async Task Configured_values_reach_the_silo()
    {
        await using var silo = await TestSilo.StartAsync(new()
        {
            ["Presence:Heartbeat:TimeoutSeconds"] = "2.5",
            ["Presence:Heartbeat:DisconnectGraceSeconds"] = "1.5",
            ["Presence:RateLimit:HeartbeatsPerMinute"] = "7",
            ["Presence:Cluster:Partitions"] = "16",
        });

        Assert.Equal(TimeSpan.FromSeconds(2.5), silo.Runtime.Policy.DefaultTimeout);
        Assert.Equal(TimeSpan.FromSeconds(1.5), silo.Runtime.Policy.DisconnectGrace);
        Assert.Equal(7, silo.Runtime.Policy.HeartbeatsPerMinute);
        Assert.Equal(16, silo.Runtime.PartitionCount);
        Assert.Equal("memory", silo.Runtime.StorageName);
    }

    [Fact]
    public async Task Defaults_are_those_of_the_contract()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Heartbeat:TimeoutSeconds"] = null });

        Assert.Equal(TimeSpan.FromSeconds(90), silo.Runtime.Policy.DefaultTimeout);
        Assert.Equal(TimeSpan.FromSeconds(5), silo.Runtime.Policy.DisconnectGrace);
        Assert.Equal(120, silo.Runtime.Policy.HeartbeatsPerMinute);
        Assert.Equal(1024, silo.Runtime.PartitionCount);
    }

    [Theory]
    [InlineData("Presence:Heartbeat:TimeoutSeconds", "0")]
    [InlineData("Presence:Heartbeat:TimeoutSeconds", "-3")]
    [InlineData("Presence:Heartbeat:TimeoutSeconds", "NaN")]
    [InlineData("Presence:Heartbeat:IntervalSeconds", "0")]
    [InlineData("Presence:Heartbeat:DisconnectGraceSeconds", "-1")]
    [InlineData("Presence:Storage:Provider", "mysql")]
    [InlineData("Presence:RateLimit:HeartbeatsPerMinute", "0")]
    [InlineData("Presence:Events:Retention", "10")]
    [InlineData("Presence:Cluster:Partitions", "0")]
    [InlineData("Presence:Cluster:Mode", "mesh")]
    [InlineData("Presence:Silo:TimerTickMilliseconds", "5")]
    [InlineData("Presence:Silo:CollectionAgeSeconds", "0")]
    public async Task Invalid_setting_stops_start_up_with_a_message_naming_the_key(string key, string value)
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => TestSilo.StartAsync(new() { [key] = value }));

        Assert.Contains(key, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unparsable_number_stops_start_up_with_a_message_naming_the_key()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() => TestSilo.StartAsync(new() { ["Presence:Heartbeat:TimeoutSeconds"] = "ninety" }));

        Assert.Contains("Presence:Heartbeat:TimeoutSeconds", error.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Silo_is_ready_only_while_started()
    {
        await using var silo = await TestSilo.StartAsync();
        Assert.True(silo.Runtime.IsReady);

        await silo.Runtime.StopAsync(CancellationToken.None);

        Assert.False(silo.Runtime.IsReady);
    }
}
