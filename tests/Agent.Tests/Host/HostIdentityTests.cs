using Presence.Agent.Host;

namespace Presence.Agent.Tests.Host;

public sealed class HostIdentityTests
{
    [Theory]
    [InlineData("rack3-node7", "rack3-node7")]
    [InlineData("Rack 3 (node 7)", "Rack-3--node-7-")]
    [InlineData("höst.example.com", "h-st.example.com")]
    [InlineData("", "agent")]
    [InlineData("   ", "agent")]
    [InlineData("user@host:42", "user@host:42")]
    public void The_default_device_id_is_the_host_name_made_valid(string hostName, string expected)
    {
        var id = HostIdentity.DeviceIdFrom(hostName);

        Assert.Equal(expected, id);
        Assert.True(HostIdentity.IsValidDeviceId(id));
    }

    [Fact]
    public void A_long_host_name_is_cut_to_128_characters()
    {
        Assert.Equal(new string('a', 128), HostIdentity.DeviceIdFrom(new string('a', 300)));
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("a b", false)]
    [InlineData("a/b", false)]
    [InlineData("agent-42", true)]
    [InlineData("A.b_c:d@e-f", true)]
    public void Device_ids_follow_the_contract(string id, bool valid) => Assert.Equal(valid, HostIdentity.IsValidDeviceId(id));

    [Fact]
    public void Printable_drops_control_characters_and_never_splits_a_surrogate_pair()
    {
        Assert.Equal("ab", HostIdentity.Printable("a\u0007b\n", 10));
        Assert.Equal("abc", HostIdentity.Printable("abcdef", 3));
        Assert.Equal("ab", HostIdentity.Printable("ab\U0001F600", 3));
        Assert.Equal("ab\U0001F600", HostIdentity.Printable("ab\U0001F600", 4));
        Assert.Equal("abc", HostIdentity.Printable("a\ud800b\udc00c", 10));
    }

    [Theory]
    [InlineData("true", false, "docker")]
    [InlineData(null, true, "docker")]
    [InlineData(null, false, "linux")]
    [InlineData("false", false, "linux")]
    public void The_platform_is_docker_inside_a_container(string? runningInContainer, bool dockerEnv, string expected)
    {
        var platform = HostIdentity.Platform(
            name => name == "DOTNET_RUNNING_IN_CONTAINER" ? runningInContainer : null,
            path => dockerEnv && path == "/.dockerenv");

        Assert.Equal(expected, platform);
    }

    [Fact]
    public void The_agent_version_is_printable_and_within_64_characters()
    {
        var version = HostIdentity.AgentVersion();

        Assert.InRange(version.Length, 1, 64);
        Assert.DoesNotContain('+', version);
    }
}
