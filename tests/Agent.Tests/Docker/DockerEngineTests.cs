using Microsoft.Extensions.Logging;
using Presence.Agent.Docker;
using Presence.Agent.Tests.Support;

namespace Presence.Agent.Tests.Docker;

/// <summary>Listing containers from a fake Docker Engine API served by Kestrel on a temporary unix socket.</summary>
public sealed class DockerEngineTests : IAsyncLifetime
{
    private readonly LogRecorder _log = new();
    private FakeDockerEngine _engine = null!;

    public async Task InitializeAsync() => _engine = await FakeDockerEngine.StartAsync();

    public async Task DisposeAsync() => await _engine.DisposeAsync();

    [Fact]
    public async Task Containers_are_mapped_to_the_contracts_fields()
    {
        _engine.Answer("""
            [
              {"Id":"4f0c1a2b3c4d5e6f7a8b","Names":["/web","/alias"],"Image":"nginx:1.27","State":"running","Status":"Up 2 hours",
               "Ports":[{"IP":"0.0.0.0","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},{"IP":"::","PrivatePort":80,"PublicPort":8080,"Type":"tcp"},
                        {"PrivatePort":443,"Type":"tcp"},{"PrivatePort":443,"Type":"tcp"}]},
              {"Id":"9a8b7c6d5e4f3a2b1c0d","Names":[],"Image":"redis","State":"exited","Ports":[]},
              {"Id":"","Names":null,"Image":"ghost"},
              "not an object"
            ]
            """);
        using var docker = Engine();

        var containers = await docker.ListAsync(CancellationToken.None);

        Assert.Equal(
            [
                new ContainerInfo("web", "nginx:1.27", "running", "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 443/tcp"),
                new ContainerInfo("9a8b7c6d5e4f", "redis", "exited", ""),
            ],
            containers);
        Assert.Equal("?all=true", Assert.Single(_engine.Queries));
    }

    [Fact]
    public async Task Long_fields_are_cut_to_the_contracts_limits_and_at_most_256_containers_are_kept()
    {
        var ports = string.Join(',', Enumerable.Range(1000, 40).Select(p => $$"""{"IP":"0.0.0.0","PrivatePort":{{p}},"PublicPort":{{p}},"Type":"tcp"}"""));
        var item = $$"""{"Id":"x","Names":["/{{new string('n', 200)}}"],"Image":"{{new string('i', 300)}}","State":"{{new string('s', 40)}}","Ports":[{{ports}}]}""";
        _engine.Answer("[" + string.Join(',', Enumerable.Repeat(item, 300)) + "]");
        using var docker = Engine();

        var containers = await docker.ListAsync(CancellationToken.None);

        Assert.Equal(256, containers!.Count);
        Assert.All(containers, c =>
        {
            Assert.Equal(new string('n', 128), c.Name);
            Assert.Equal(new string('i', 256), c.Image);
            Assert.Equal(new string('s', 32), c.State);
            Assert.Equal(128, c.Ports.Length);
            Assert.StartsWith("0.0.0.0:1000->1000/tcp, 0.0.0.0:1001->1001/tcp", c.Ports, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task Control_characters_are_dropped_from_what_the_engine_says()
    {
        _engine.Answer("""[{"Id":"x","Names":["/we\u0007b"],"Image":"img\n","State":"run\u0000ning"}]""");
        using var docker = Engine();

        Assert.Equal([new ContainerInfo("web", "img", "running", "")], await docker.ListAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_missing_socket_means_no_containers()
    {
        using var docker = new DockerEngine(_engine.SocketPath + ".absent", TimeProvider.System, Logger());

        Assert.Null(await docker.ListAsync(CancellationToken.None));
        Assert.Null(await docker.ListAsync(CancellationToken.None));
        Assert.Equal(1, _log.Count(5104));
    }

    [Theory]
    [InlineData(500, """{"message":"engine error"}""")]
    [InlineData(200, """{"message":"not a list"}""")]
    [InlineData(200, "<html>")]
    public async Task An_engine_error_means_no_containers_logged_once_and_its_recovery_too(int status, string body)
    {
        _engine.Fail(status, body);
        using var docker = Engine();

        Assert.Null(await docker.ListAsync(CancellationToken.None));
        Assert.Null(await docker.ListAsync(CancellationToken.None));
        _engine.Answer("""[{"Id":"abc","Names":["/db"],"Image":"postgres:17","State":"running"}]""");
        Assert.Single((await docker.ListAsync(CancellationToken.None))!);

        Assert.Equal(1, _log.Count(5102));
        Assert.Equal(1, _log.Count(5103));
    }

    [Fact]
    public async Task A_socket_path_nobody_listens_on_means_no_containers()
    {
        // What a stopped engine leaves behind: the path is there, nothing answers on it.
        var stale = Path.Combine("/tmp", $"pa-stale-{Guid.NewGuid():N}"[..22] + ".sock");
        await File.WriteAllTextAsync(stale, "");
        try
        {
            using var docker = new DockerEngine(stale, TimeProvider.System, Logger());
            Assert.Null(await docker.ListAsync(CancellationToken.None));
            Assert.Equal(1, _log.Count(5102));
        }
        finally
        {
            File.Delete(stale);
        }
    }

    private DockerEngine Engine() => new(_engine.SocketPath, TimeProvider.System, Logger());

    private ILogger Logger() => _log.CreateLogger("docker");
}
