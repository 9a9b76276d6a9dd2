using Presence.Agent;

namespace Presence.Agent.Tests;

public sealed class AgentOptionsTests
{
    [Fact]
    public void The_contract_command_line_parses()
    {
        var options = AgentOptions.Parse(["--server", "http://127.0.0.1:5080", "--device-id", "agent-42", "--secret", "acme.s", "--websocket"]);

        Assert.Equal(new Uri("http://127.0.0.1:5080"), options.Server);
        Assert.Equal("agent-42", options.DeviceId);
        Assert.Equal("acme.s", options.Secret);
        Assert.True(options.WebSocket);
        Assert.Equal(0, options.Simulate);
    }

    [Fact]
    public void The_simulator_command_line_parses()
    {
        var options = AgentOptions.Parse(["--server", "http://127.0.0.1:5080", "--simulate", "1000", "--churn", "5", "--duration", "30", "--rate", "2000"]);

        Assert.Equal(1000, options.Simulate);
        Assert.Equal(5, options.ChurnPercent);
        Assert.Equal(30, options.DurationSeconds);
        Assert.Equal(2000, options.Rate);
    }

    [Fact]
    public void The_agents_own_options_parse()
    {
        var options = AgentOptions.Parse(["--proc-root", "/host/proc", "--docker-socket", "/run/docker.sock", "--verbose"]);

        Assert.Equal("/host/proc", options.ProcRoot);
        Assert.Equal("/run/docker.sock", options.DockerSocket);
        Assert.True(options.Verbose);
        Assert.Equal("/var/run/docker.sock", AgentOptions.Parse([]).DockerSocket);
    }

    [Fact]
    public void Settings_take_the_host_name_the_environment_and_the_options()
    {
        var environment = new Dictionary<string, string?> { ["PRESENCE_PROC_ROOT"] = "/host/proc" };

        var fromHost = AgentSettings.FromOptions(AgentOptions.Parse(["--websocket"]), "rack 3 node", environment.GetValueOrDefault, _ => false);
        var given = AgentSettings.FromOptions(AgentOptions.Parse(["--device-id", "agent-42", "--proc-root", "/mnt/proc"]), "rack 3 node", environment.GetValueOrDefault, _ => true);

        Assert.Equal(("rack-3-node", "rack 3 node", "linux", "/host/proc", true), (fromHost.DeviceId, fromHost.DeviceName, fromHost.Platform, fromHost.ProcRoot, fromHost.WebSocket));
        Assert.Equal(("agent-42", "docker", "/mnt/proc"), (given.DeviceId, given.Platform, given.ProcRoot));
        Assert.Equal("/proc", AgentSettings.FromOptions(AgentOptions.Parse([]), "h", _ => null, _ => false).ProcRoot);
        Assert.Equal(new Uri("https://example.com/presence/"),
            AgentSettings.FromOptions(AgentOptions.Parse(["--server", "https://example.com/presence"]), "h", _ => null, _ => false).Server);
    }

    [Fact]
    public void Without_a_secret_option_the_secrets_come_from_the_environment()
    {
        var environment = new Dictionary<string, string?> { ["PRESENCE_DEVICE_SECRET"] = "acme.from-env" };

        var fromEnvironment = AgentSettings.FromOptions(AgentOptions.Parse([]), "h", environment.GetValueOrDefault, _ => false);
        var optionWins = AgentSettings.FromOptions(AgentOptions.Parse(["--shared-secret", "fleet-secret-from-option"]), "h", environment.GetValueOrDefault, _ => false);
        environment["PRESENCE_SHARED_SECRET"] = "fleet";

        Assert.Equal(("acme.from-env", null), (fromEnvironment.Secret, fromEnvironment.SharedSecret));
        Assert.Equal((null, "fleet-secret-from-option"), (optionWins.Secret, optionWins.SharedSecret));
        var both = Assert.Throws<ArgumentException>(() => AgentSettings.FromOptions(AgentOptions.Parse([]), "h", environment.GetValueOrDefault, _ => false));
        Assert.DoesNotContain("acme.from-env", both.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--device-id", "bad id")]
    [InlineData("--device-id", "")]
    [InlineData("--proc-root")]
    [InlineData("--bogus")]
    [InlineData("--server")]
    [InlineData("--server", "ftp://x")]
    [InlineData("--simulate", "0")]
    [InlineData("--simulate", "ten")]
    [InlineData("--churn", "5")]
    [InlineData("--simulate", "5", "--churn", "101")]
    [InlineData("--secret", "a", "--shared-secret", "b")]
    public void A_bad_command_line_is_refused_with_a_message_naming_the_argument(params string[] args)
    {
        var error = Assert.Throws<ArgumentException>(() => AgentOptions.Parse(args));
        Assert.Contains("--", error.Message, StringComparison.Ordinal);
    }
}
