using System.Net;
using System.Net.Sockets;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Remoting;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Tests.Remoting;

public sealed class SiloTransportTests : IAsyncLifetime
{
    private static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly FakeSilo _silo = new();
    private readonly RecordingLogger<SiloServer> _log = new();
    private SiloServer _server = null!;
    private string _address = "";

    public Task InitializeAsync()
    {
        (_server, _address) = Serve(_silo, secret: null, _log);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static (SiloServer Server, string Address) Serve(ISiloCalls silo, string? secret, RecordingLogger<SiloServer>? log = null)
    {
        var server = new SiloServer(silo, "silo-test", secret, log ?? new RecordingLogger<SiloServer>());
        var bound = server.Start(new IPEndPoint(IPAddress.Loopback, 0));
        return (server, $"127.0.0.1:{bound.Port}");
    }

    private Task<SiloConnection> ConnectAsync(string? secret = null) => SiloConnection.ConnectAsync(_address, secret, ConnectTimeout, CancellationToken.None);

    private static DeviceKey Key(string deviceId) => new("tenant-a", deviceId);

    [Fact]
    public async Task The_handshake_tells_the_client_the_silo_id()
    {
        await using var connection = await ConnectAsync();

        Assert.Equal("silo-test", connection.SiloId);
        Assert.Equal(_address, connection.Address);
        Assert.True(connection.IsOpen);
        Assert.False(connection.Closed.IsCompleted);
    }

    [Fact]
    public async Task Every_call_round_trips_its_arguments_and_result()
    {
        await using var connection = await ConnectAsync();
        var key = Key("dev-1");
        var heartbeat = new HeartbeatInput("dev-1", "Gerät", "linux", "1.0", new MetricSet(["cpu_pct"], [1.5]), [new ContainerInfo("a", "b", "c", "d")])
        {
            CredentialStamp = 99,
        };
        var provision = new ProvisionInput("n", TimeSpan.FromSeconds(30), new Dictionary<string, string> { ["rack"] = "1" }, new DeviceCredential(5, [1, 2]));

        var accepted = await connection.HeartbeatAsync(key, heartbeat);
        var limited = await connection.HeartbeatAsync(key, new HeartbeatInput("dev-1", "limit-me"));
        var provisioned = await connection.ProvisionAsync(key, provision);
        var device = await connection.GetAsync(key);
        var missing = await connection.GetAsync(Key("missing"));
        var removed = await connection.RemoveAsync(key);
        var notRemoved = await connection.RemoveAsync(Key("missing"));
        var sessions = await connection.GetSessionsAsync(key, 3);
        var noSessions = await connection.GetSessionsAsync(Key("missing"), 3);
        await connection.ChannelOpenedAsync(key);
        await connection.ChannelClosedAsync(key);
        var commandOk = await connection.CommandResultAsync(key, new CommandResult("c-1", true, "done"));
        var busy = await connection.HeartbeatsLastMinuteAsync("busy");

        Assert.Equal(HeartbeatOutcome.Accepted, accepted.Outcome);
        Assert.Equal(("tenant-a", "dev-1", "name-of-dev-1", DeviceStatus.Online, 5L), (accepted.Device!.TenantId, accepted.Device.DeviceId, accepted.Device.DeviceName, accepted.Device.Status, accepted.Device.SessionId));
        Assert.Equal(HeartbeatResult.Limited(TimeSpan.FromSeconds(3)), limited);
        Assert.True(provisioned.Created);
        RemotingTestData.AssertSameDevice(RemotingTestData.FullDevice("dev-1") with { TenantId = "tenant-a" }, provisioned.Device);
        RemotingTestData.AssertSameDevice(RemotingTestData.FullDevice("dev-1"), device!);
        Assert.Null(missing);
        Assert.True(removed);
        Assert.False(notRemoved);
        Assert.Equal([1L, 2L, 3L], sessions!.Select(s => s.SessionId));
        Assert.Null(noSessions);
        Assert.True(commandOk);
        Assert.Equal(long.MaxValue, busy);

        var calls = _silo.Calls.ToArray();
        Assert.Equal(
            ["HeartbeatAsync", "HeartbeatAsync", "ProvisionAsync", "GetAsync", "GetAsync", "RemoveAsync", "RemoveAsync", "GetSessionsAsync", "GetSessionsAsync",
             "ChannelOpenedAsync", "ChannelClosedAsync", "CommandResultAsync", "HeartbeatsLastMinute"],
            calls.Select(c => c.Method));
        var sent = Assert.IsType<HeartbeatInput>(calls[0].Argument);
        Assert.Equal((heartbeat.DeviceName, heartbeat.Platform, heartbeat.AppVersion, heartbeat.CredentialStamp), (sent.DeviceName, sent.Platform, sent.AppVersion, sent.CredentialStamp));
        Assert.Equal(heartbeat.Metrics!.Value.Keys, sent.Metrics!.Value.Keys);
        Assert.Equal(heartbeat.Containers, sent.Containers);
        var provisionSent = Assert.IsType<ProvisionInput>(calls[2].Argument);
        Assert.Equal((provision.DeviceName, provision.Timeout, provision.Credential!.Stamp), (provisionSent.DeviceName, provisionSent.Timeout, provisionSent.Credential!.Stamp));
        Assert.Equal(provision.Labels, provisionSent.Labels);
        Assert.Equal(3, calls[7].Argument);
        Assert.Equal(new CommandResult("c-1", true, "done"), calls[11].Argument);
        Assert.Equal(key, calls[5].Key);
    }

    [Fact]
    public async Task A_thousand_concurrent_calls_from_many_tasks_all_get_their_own_replies()
    {
        await using var connection = await ConnectAsync();

        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(worker => Task.Run(async () =>
        {
            var mine = new List<(DeviceKey Key, HeartbeatResult Result)>();
            var calls = Enumerable.Range(0, 20).Select(i => Key($"w{worker}-d{i}")).Select(key => (key, call: connection.HeartbeatAsync(key, new HeartbeatInput(key.DeviceId)).AsTask())).ToList();
            foreach (var (key, call) in calls)
            {
                mine.Add((key, await call));
            }

            return mine;
        })));

        var all = results.SelectMany(r => r).ToList();
        Assert.Equal(1000, all.Count);
        Assert.All(all, r => Assert.Equal("name-of-" + r.Key.DeviceId, r.Result.Device!.DeviceName));
        Assert.Equal(1000, all.Select(r => r.Key).Distinct().Count());
    }

    [Fact]
    public async Task Replies_completed_in_reverse_order_reach_the_right_callers()
    {
        _silo.HoldHeartbeats = true;
        await using var connection = await ConnectAsync();
        var calls = Enumerable.Range(0, 100).Select(i => (Key: Key($"d{i}"), Call: connection.HeartbeatAsync(Key($"d{i}"), new HeartbeatInput($"d{i}")).AsTask())).ToList();
        await _silo.HeartbeatsArrivedAsync(100);

        foreach (var (key, reply) in _silo.Held.Reverse())
        {
            reply.SetResult(HeartbeatResult.Accepted(FakeSilo.Device(key)));
        }

        foreach (var (key, call) in calls)
        {
            Assert.Equal("name-of-" + key.DeviceId, (await call).Device!.DeviceName);
        }
    }

    [Fact]
    public async Task Calls_for_one_device_are_invoked_in_the_order_they_were_sent()
    {
        await using var connection = await ConnectAsync();
        var key = Key("ordered");

        var calls = Enumerable.Range(0, 500).Select(i => connection.HeartbeatAsync(key, new HeartbeatInput("ordered", DeviceName: $"{i}")).AsTask()).ToList();
        await Task.WhenAll(calls);

        var names = _silo.Calls.Select(c => ((HeartbeatInput)c.Argument!).DeviceName);
        Assert.Equal(Enumerable.Range(0, 500).Select(i => $"{i}"), names);
    }

    [Theory]
    [InlineData("not-owner", 7)]
    [InlineData("fenced", 9)]
    public async Task Ownership_errors_reach_the_client_as_not_owner_with_the_partition(string deviceId, int partition)
    {
        await using var connection = await ConnectAsync();

        var error = await Assert.ThrowsAsync<NotOwnerException>(() => connection.GetAsync(Key(deviceId)).AsTask());

        Assert.Equal(partition, error.Partition);
    }

    [Fact]
    public async Task Storage_outages_reach_the_client_as_unavailable()
    {
        await using var connection = await ConnectAsync();

        var error = await Assert.ThrowsAsync<StorageUnavailableException>(() => connection.HeartbeatAsync(Key("storage-down"), new HeartbeatInput("storage-down")).AsTask());

        Assert.Equal("storage does not answer", error.Message);
    }

    [Theory]
    [InlineData("bug", "InvalidOperationException: the grain broke")]
    [InlineData("bug-thrown", "InvalidOperationException: thrown before any await")]
    public async Task Unexpected_errors_reach_the_client_as_remote_call_failures_and_are_logged(string deviceId, string message)
    {
        await using var connection = await ConnectAsync();

        var error = await Assert.ThrowsAsync<RemoteCallException>(() => connection.GetAsync(Key(deviceId)).AsTask());

        Assert.Equal(message, error.Message);
        Assert.Equal(1, _log.Count(7007));
        Assert.DoesNotContain(_log.Entries, e => e.Message.Contains("bug-thrown", StringComparison.Ordinal));
        Assert.True(await connection.RemoveAsync(Key("still-works")));
    }

    [Fact]
    public async Task A_channel_call_that_fails_reports_its_error()
    {
        await using var connection = await ConnectAsync();

        await Assert.ThrowsAsync<NotOwnerException>(() => connection.ChannelClosedAsync(Key("not-owner")).AsTask());
    }

    [Fact]
    public async Task An_abort_fails_every_pending_call_and_closes_the_connection()
    {
        _silo.HoldHeartbeats = true;
        await using var connection = await ConnectAsync();
        var calls = Enumerable.Range(0, 10).Select(i => connection.HeartbeatAsync(Key($"d{i}"), new HeartbeatInput($"d{i}")).AsTask()).ToList();
        await _silo.HeartbeatsArrivedAsync(10);

        _server.Abort();

        foreach (var call in calls)
        {
            await Assert.ThrowsAsync<SiloUnreachableException>(() => call);
        }

        await connection.Closed.WaitAsync(Patience);
        Assert.False(connection.IsOpen);
        var later = connection.GetAsync(Key("later"));
        Assert.True(later.IsFaulted);
        await Assert.ThrowsAsync<SiloUnreachableException>(() => later.AsTask());
    }

    [Fact]
    public async Task Disposing_the_connection_fails_its_pending_calls()
    {
        _silo.HoldHeartbeats = true;
        var connection = await ConnectAsync();
        var call = connection.HeartbeatAsync(Key("d"), new HeartbeatInput("d")).AsTask();
        await _silo.HeartbeatsArrivedAsync(1);

        await connection.DisposeAsync();

        await Assert.ThrowsAsync<SiloUnreachableException>(() => call);
        Assert.True(connection.Closed.IsCompleted);
    }

    [Fact]
    public async Task A_graceful_stop_answers_calls_in_flight_before_closing()
    {
        _silo.HoldHeartbeats = true;
        await using var connection = await ConnectAsync();
        var call = connection.HeartbeatAsync(Key("d"), new HeartbeatInput("d")).AsTask();
        await _silo.HeartbeatsArrivedAsync(1);

        var stopping = _server.StopAsync(new CancellationTokenSource(Patience).Token);
        Assert.False(stopping.IsCompleted);
        var (key, reply) = Assert.Single(_silo.Held);
        reply.SetResult(HeartbeatResult.Accepted(FakeSilo.Device(key)));

        Assert.Equal(HeartbeatOutcome.Accepted, (await call).Outcome);
        await stopping;
        await connection.Closed.WaitAsync(Patience);
        await Assert.ThrowsAsync<SiloUnreachableException>(() => SiloConnection.ConnectAsync(_address, null, ConnectTimeout, CancellationToken.None));
    }

    [Fact]
    public async Task Connecting_to_a_closed_port_is_unreachable()
    {
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }

        await Assert.ThrowsAsync<SiloUnreachableException>(() => SiloConnection.ConnectAsync($"127.0.0.1:{port}", null, ConnectTimeout, CancellationToken.None));
    }

    [Fact]
    public async Task A_host_name_address_connects()
    {
        await using var connection = await SiloConnection.ConnectAsync(_address.Replace("127.0.0.1", "localhost", StringComparison.Ordinal), null, ConnectTimeout, CancellationToken.None);

        Assert.Equal("silo-test", connection.SiloId);
    }

    [Theory]
    [InlineData("127.0.0.1:80", typeof(IPEndPoint))]
    [InlineData("[::1]:80", typeof(IPEndPoint))]
    [InlineData("silo-0.presence:7070", typeof(DnsEndPoint))]
    public void Addresses_are_ip_or_host_with_a_port(string address, Type kind)
    {
        Assert.IsType(kind, SiloConnection.ParseAddress(address));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("host:")]
    [InlineData("host:70000")]
    [InlineData("::1:80")]
    public void Addresses_without_a_valid_port_are_refused(string address)
    {
        Assert.Throws<ArgumentException>(() => SiloConnection.ParseAddress(address));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("wrong")]
    public async Task A_silo_with_a_secret_refuses_clients_without_it(string? secret)
    {
        var log = new RecordingLogger<SiloServer>();
        var (server, address) = Serve(_silo, "cluster-secret", log);
        await using var _ = server;

        var error = await Assert.ThrowsAsync<SiloUnreachableException>(() => SiloConnection.ConnectAsync(address, secret, ConnectTimeout, CancellationToken.None));

        Assert.Contains("cluster secret was refused", error.Message, StringComparison.Ordinal);
        Assert.Equal(1, log.Count(7005));
        Assert.DoesNotContain(log.Entries, e => e.Message.Contains("cluster-secret", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_silo_with_a_secret_accepts_clients_with_it_and_one_without_accepts_any()
    {
        var (server, address) = Serve(_silo, "cluster-secret");
        await using var _ = server;

        await using var right = await SiloConnection.ConnectAsync(address, "cluster-secret", ConnectTimeout, CancellationToken.None);
        await using var any = await ConnectAsync(secret: "whatever");

        Assert.True(await right.RemoveAsync(Key("d")));
        Assert.True(await any.RemoveAsync(Key("d")));
    }

    [Fact]
    public async Task An_oversized_frame_closes_that_connection_only()
    {
        await using var healthy = await ConnectAsync();
        using var rogue = await RawConnectAsync();

        await rogue.SendAsync(BitConverter.GetBytes(WireProtocol.MaxFrameSize + 1));

        Assert.True(await ClosedByPeerAsync(rogue));
        Assert.Equal(1, _log.Count(7006));
        Assert.True(await healthy.RemoveAsync(Key("d")));
    }

    [Fact]
    public async Task A_garbage_frame_closes_that_connection_only()
    {
        await using var healthy = await ConnectAsync();
        using var rogue = await RawConnectAsync();
        var frames = new FrameBuffer();
        frames.TryAppend((byte)WireMethod.Get, 1, 0, static (ref WireWriter writer, int _) => writer.WriteVarUInt(99));

        await rogue.SendAsync(frames.Written);

        Assert.True(await ClosedByPeerAsync(rogue));
        Assert.Equal(1, _log.Count(7006));
        Assert.True(await healthy.RemoveAsync(Key("d")));
    }

    [Fact]
    public async Task A_client_that_does_not_speak_the_protocol_is_closed()
    {
        using var rogue = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await rogue.ConnectAsync(SiloConnection.ParseAddress(_address));

        await rogue.SendAsync("GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray());

        Assert.True(await ClosedByPeerAsync(rogue));
        Assert.Equal(1, _log.Count(7006));
    }

    [Fact]
    public async Task A_too_large_call_fails_alone()
    {
        await using var connection = await ConnectAsync();
        var huge = new HeartbeatInput("d", DeviceName: new string('x', WireProtocol.MaxFrameSize));

        await Assert.ThrowsAsync<ArgumentException>(() => connection.HeartbeatAsync(Key("d"), huge).AsTask());

        Assert.True(await connection.RemoveAsync(Key("d")));
    }

    [Fact]
    public async Task Canceling_one_call_leaves_the_others_alone()
    {
        _silo.HoldHeartbeats = true;
        await using var connection = await ConnectAsync();
        using var cancel = new CancellationTokenSource();
        var canceled = connection.HeartbeatAsync(Key("slow"), new HeartbeatInput("slow"), cancel.Token).AsTask();
        var other = connection.HeartbeatAsync(Key("other"), new HeartbeatInput("other")).AsTask();
        await _silo.HeartbeatsArrivedAsync(2);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => canceled);
        Assert.True(canceled.IsCanceled);
        Assert.False(other.IsCompleted);
        foreach (var (key, reply) in _silo.Held)
        {
            reply.SetResult(HeartbeatResult.Accepted(FakeSilo.Device(key)));
        }

        Assert.Equal("name-of-other", (await other).Device!.DeviceName);
        Assert.True(connection.IsOpen);
        Assert.True(await connection.RemoveAsync(Key("after")));
    }

    [Fact]
    public async Task An_already_canceled_token_sends_nothing()
    {
        await using var connection = await ConnectAsync();

        var call = connection.GetAsync(Key("d"), new CancellationToken(canceled: true));

        Assert.True(call.IsCanceled);
        Assert.Empty(_silo.Calls);
    }

    private async Task<Socket> RawConnectAsync()
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(SiloConnection.ParseAddress(_address));
        var hello = new FrameBuffer();
        hello.TryAppend((byte)WireMethod.Hello, 0, 0, static (ref WireWriter writer, int _) =>
        {
            writer.WriteBytes(WireProtocol.Magic);
            writer.WriteVarUInt(WireProtocol.Version);
            writer.WriteBool(false);
        });
        await socket.SendAsync(hello.Written);
        return socket;
    }

    /// <summary>Reads (and drops) what the silo sends until it closes the connection.</summary>
    private static async Task<bool> ClosedByPeerAsync(Socket socket)
    {
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(Patience);
        try
        {
            while (await socket.ReceiveAsync(buffer, SocketFlags.None, deadline.Token) > 0)
            {
            }
        }
        catch (SocketException)
        {
            // A reset is a close too.
        }

        return true;
    }
}
