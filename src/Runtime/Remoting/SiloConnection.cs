using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.Tasks.Sources;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Remoting;

/// <summary>
/// A gateway's connection to one silo: every grain call is a frame on it, many in flight at once, matched to their
/// replies by call id. Safe for concurrent use. When the connection is lost, every pending call fails with
/// <see cref="SiloUnreachableException"/> and so does every later one; connect again for a new connection.
/// </summary>
public sealed class SiloConnection : IDeviceGrains, IAsyncDisposable
{
    private readonly WireSocket _wire;
    private readonly ConcurrentDictionary<int, PendingCall> _pending = new();
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly FrameHandler _onReply;
    private readonly Lock _closeGate = new();
    private Task _reading = Task.CompletedTask;
    private int _nextId;
    private volatile bool _isOpen = true;
    private string _closeReason = "the connection was closed";

    private SiloConnection(WireSocket wire, string address, string siloId)
    {
        _wire = wire;
        Address = address;
        SiloId = siloId;
        _onReply = OnReply;
    }

    /// <summary>The silo's id, from its handshake.</summary>
    public string SiloId { get; }

    public string Address { get; }

    public bool IsOpen => _isOpen;

    /// <summary>Completes when the connection is lost or disposed.</summary>
    public Task Closed => _closed.Task;

    /// <summary>
    /// Connects to <paramref name="address"/> (<c>host:port</c>; the host an IP address or a name, IPv6 in
    /// <c>[..]:port</c>) and does the handshake. Throws <see cref="SiloUnreachableException"/> when the silo cannot be
    /// reached in <paramref name="timeout"/> or refuses the cluster secret.
    /// </summary>
    public static async Task<SiloConnection> ConnectAsync(string address, string? clusterSecret, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var endpoint = ParseAddress(address);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var socket = endpoint is IPEndPoint ip
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        WireSocket? wire = null;
        try
        {
            await socket.ConnectAsync(endpoint, deadline.Token).ConfigureAwait(false);
            wire = new WireSocket(socket);
            var secretHash = clusterSecret is null ? null : SiloServer.HashSecret(clusterSecret);
            wire.TrySend((byte)WireMethod.Hello, 0, secretHash, static (ref WireWriter writer, byte[]? secret) =>
            {
                writer.WriteBytes(WireProtocol.Magic);
                writer.WriteVarUInt(WireProtocol.Version);
                writer.WriteBool(secret is not null);
                if (secret is not null)
                {
                    writer.WriteBytes(secret);
                }
            });

            var welcome = new Welcome();
            if (!await wire.ReadFramesAsync(welcome.Read, deadline.Token).ConfigureAwait(false))
            {
                throw new SiloUnreachableException($"silo at {address} closed the connection during the handshake");
            }

            if (welcome.Refusal is { } refusal)
            {
                throw new SiloUnreachableException($"silo at {address} refused the connection: {refusal}");
            }

            var connection = new SiloConnection(wire, address, welcome.SiloId!);
            connection._reading = connection.ReadRepliesAsync();
            return connection;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Close(socket, wire);
            throw new SiloUnreachableException($"silo at {address} did not answer within {timeout.TotalSeconds:0.###} s");
        }
        catch (Exception error) when (error is SocketException or IOException or InvalidDataException or ObjectDisposedException)
        {
            Close(socket, wire);
            throw new SiloUnreachableException($"silo at {address} cannot be reached: {error.Message}", error);
        }
        catch
        {
            Close(socket, wire);
            throw;
        }

        static void Close(Socket socket, WireSocket? wire)
        {
            wire?.Dispose();
            socket.Dispose();
        }
    }

    internal static EndPoint ParseAddress(string address)
    {
        ArgumentException.ThrowIfNullOrEmpty(address);
        if (IPEndPoint.TryParse(address, out var ip) && ip.Port != 0 && address.Contains(':', StringComparison.Ordinal)
            && (ip.AddressFamily == AddressFamily.InterNetwork || address.StartsWith('[')))
        {
            return ip;
        }

        var colon = address.LastIndexOf(':');
        if (colon <= 0
            || address.AsSpan(0, colon).Contains(':')
            || !int.TryParse(address.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port)
            || port is < 1 or > 65535)
        {
            throw new ArgumentException($"'{address}' is not host:port (IPv6 addresses in [..]:port)", nameof(address));
        }

        return new DnsEndPoint(address[..colon], port);
    }

    /// <summary>
    /// Applies a heartbeat on the silo. An accepted heartbeat's <see cref="HeartbeatResult.Device"/> is lean: tenant
    /// and device id, name, status, timeout, session id, last seen, version and sequence; its metrics, containers,
    /// labels and credential are empty. That is what the acknowledgement needs; <see cref="GetAsync"/> has the rest.
    /// </summary>
    public ValueTask<HeartbeatResult> HeartbeatAsync(DeviceKey key, HeartbeatInput input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Call(WireMethod.Heartbeat, key, (key, input), Requests.Heartbeat, Replies.Heartbeat, cancellationToken);
    }

    public ValueTask<ProvisionResult> ProvisionAsync(DeviceKey key, ProvisionInput input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        return Call(WireMethod.Provision, key, (key, input), Requests.Provision, Replies.Provision, cancellationToken);
    }

    public ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Call(WireMethod.Get, key, key, Requests.Key, Replies.Device, cancellationToken);

    public ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Call(WireMethod.Remove, key, key, Requests.Key, Replies.Bool, cancellationToken);

    public ValueTask<IReadOnlyList<SessionRecord>?> GetSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default) =>
        Call(WireMethod.Sessions, key, (key, limit), Requests.Sessions, Replies.Sessions, cancellationToken);

    public ValueTask ChannelOpenedAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Discard(Call(WireMethod.ChannelOpened, key, key, Requests.Key, Replies.Nothing, cancellationToken));

    public ValueTask ChannelClosedAsync(DeviceKey key, CancellationToken cancellationToken = default) =>
        Discard(Call(WireMethod.ChannelClosed, key, key, Requests.Key, Replies.Nothing, cancellationToken));

    public ValueTask<bool> CommandResultAsync(DeviceKey key, CommandResult result, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(result);
        return Call(WireMethod.CommandResult, key, (key, result), Requests.CommandResult, Replies.Bool, cancellationToken);
    }

    /// <summary>Heartbeats the silo accepted for <paramref name="tenantId"/> in the last minute.</summary>
    public ValueTask<long> HeartbeatsLastMinuteAsync(string tenantId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tenantId);
        return Call(WireMethod.HeartbeatsLastMinute, new DeviceKey(tenantId, ""), tenantId, Requests.Tenant, Replies.Number, cancellationToken);
    }

    private static ValueTask Discard(ValueTask<bool> call)
    {
        return call.IsCompletedSuccessfully ? ValueTask.CompletedTask : AwaitAsync(call);

        static async ValueTask AwaitAsync(ValueTask<bool> call) => await call.ConfigureAwait(false);
    }

    private ValueTask<T> Call<TArgs, T>(
        WireMethod method, DeviceKey key, TArgs args, PayloadWriter<TArgs> request, ReplyReader<T> reply, CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<T>(cancellationToken);
        }

        if (!_isOpen)
        {
            return ValueTask.FromException<T>(Unreachable());
        }

        var call = new PendingCall<T>(this, key, reply);
        var id = Interlocked.Increment(ref _nextId);
        call.Id = id;
        _pending[id] = call;
        bool sent;
        try
        {
            sent = _wire.TrySend((byte)method, id, args, request);
        }
        catch (InvalidDataException)
        {
            _pending.TryRemove(id, out _);
            return ValueTask.FromException<T>(
                new ArgumentException($"the call's arguments exceed the wire protocol's {WireProtocol.MaxFrameSize / (1024 * 1024)} MiB frame limit"));
        }
        catch (Exception)
        {
            _pending.TryRemove(id, out _);
            throw;
        }

        // Closed meanwhile: the close may have swept the pending calls before this one was added.
        if (!sent || !_isOpen)
        {
            if (_pending.TryRemove(id, out _))
            {
                call.Fail(Unreachable());
            }
        }
        else if (cancellationToken.CanBeCanceled)
        {
            call.CancelOn(cancellationToken);
        }

        return call.Task;
    }

    private bool OnReply(WireFrame frame)
    {
        // A call canceled by its caller has gone from the table; its late reply is dropped.
        if (_pending.TryRemove(frame.Id, out var call))
        {
            try
            {
                call.Complete((WireStatus)frame.Type, frame.Payload);
            }
            catch (InvalidDataException error)
            {
                call.Fail(new SiloUnreachableException($"silo {SiloId} at {Address} sent a malformed reply", error));
                throw;
            }
        }

        return true;
    }

    private async Task ReadRepliesAsync()
    {
        try
        {
            await _wire.ReadFramesAsync(_onReply, CancellationToken.None).ConfigureAwait(false);
            Close($"silo {SiloId} at {Address} closed the connection");
        }
        catch (Exception error)
        {
            Close($"the connection to silo {SiloId} at {Address} was lost ({error.Message})");
        }
    }

    private SiloUnreachableException Unreachable() => new(_closeReason);

    private void Close(string reason)
    {
        lock (_closeGate)
        {
            if (!_isOpen)
            {
                return;
            }

            _closeReason = reason;
            _isOpen = false;
        }

        _wire.Dispose();
        foreach (var id in _pending.Keys)
        {
            if (_pending.TryRemove(id, out var call))
            {
                call.Fail(Unreachable());
            }
        }

        _closed.TrySetResult();
    }

    /// <summary>Closes the connection: pending calls fail with <see cref="SiloUnreachableException"/>.</summary>
    public async ValueTask DisposeAsync()
    {
        Close($"the connection to silo {SiloId} at {Address} was closed");
        await _reading.ConfigureAwait(false);
    }

    private delegate T ReplyReader<out T>(ref WireReader reader, DeviceKey key);

    /// <summary>Request payload writers, one static instance each.</summary>
    private static class Requests
    {
        public static readonly PayloadWriter<DeviceKey> Key = WireCodec.WriteKey;
        public static readonly PayloadWriter<string> Tenant = static (ref WireWriter writer, string tenant) => writer.WriteString(tenant);

        public static readonly PayloadWriter<(DeviceKey Key, HeartbeatInput Input)> Heartbeat = static (ref WireWriter writer, (DeviceKey Key, HeartbeatInput Input) call) =>
        {
            WireCodec.WriteKey(ref writer, call.Key);
            WireCodec.WriteHeartbeatInput(ref writer, call.Input);
        };

        public static readonly PayloadWriter<(DeviceKey Key, ProvisionInput Input)> Provision = static (ref WireWriter writer, (DeviceKey Key, ProvisionInput Input) call) =>
        {
            WireCodec.WriteKey(ref writer, call.Key);
            WireCodec.WriteProvisionInput(ref writer, call.Input);
        };

        public static readonly PayloadWriter<(DeviceKey Key, int Limit)> Sessions = static (ref WireWriter writer, (DeviceKey Key, int Limit) call) =>
        {
            WireCodec.WriteKey(ref writer, call.Key);
            writer.WriteVarInt(call.Limit);
        };

        public static readonly PayloadWriter<(DeviceKey Key, CommandResult Result)> CommandResult = static (ref WireWriter writer, (DeviceKey Key, CommandResult Result) call) =>
        {
            WireCodec.WriteKey(ref writer, call.Key);
            WireCodec.WriteCommandResult(ref writer, call.Result);
        };
    }

    /// <summary>Reply payload readers, one static instance each.</summary>
    private static class Replies
    {
        public static readonly ReplyReader<HeartbeatResult> Heartbeat = WireCodec.ReadHeartbeatResult;
        public static readonly ReplyReader<ProvisionResult> Provision = static (ref WireReader reader, DeviceKey _) => WireCodec.ReadProvisionResult(ref reader);
        public static readonly ReplyReader<DeviceRecord?> Device = static (ref WireReader reader, DeviceKey _) => WireCodec.ReadNullableDevice(ref reader);
        public static readonly ReplyReader<IReadOnlyList<SessionRecord>?> Sessions = static (ref WireReader reader, DeviceKey _) => WireCodec.ReadSessions(ref reader);
        public static readonly ReplyReader<bool> Bool = static (ref WireReader reader, DeviceKey _) => reader.ReadBool();
        public static readonly ReplyReader<bool> Nothing = static (ref WireReader _, DeviceKey _) => true;
        public static readonly ReplyReader<long> Number = static (ref WireReader reader, DeviceKey _) => reader.ReadVarInt();
    }

    private abstract class PendingCall
    {
        public int Id { get; set; }

        /// <summary>Completes the call from its reply; throws <see cref="InvalidDataException"/> on a malformed one.</summary>
        public abstract void Complete(WireStatus status, ReadOnlySpan<byte> payload);

        public abstract void Fail(Exception error);
    }

    /// <summary>One call awaiting its reply: the awaitable itself (one allocation per call).</summary>
    private sealed class PendingCall<T>(SiloConnection connection, DeviceKey key, ReplyReader<T> reply) : PendingCall, IValueTaskSource<T>
    {
        private ManualResetValueTaskSourceCore<T> _core = new() { RunContinuationsAsynchronously = true };
        private CancellationTokenRegistration _cancellation;
        private int _done;

        public ValueTask<T> Task => new(this, _core.Version);

        public void CancelOn(CancellationToken cancellationToken) =>
            _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((PendingCall<T>)state!).Cancel(token), this);

        private void Cancel(CancellationToken token)
        {
            connection._pending.TryRemove(Id, out _);
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                _core.SetException(new OperationCanceledException(token));
            }
        }

        public override void Complete(WireStatus status, ReadOnlySpan<byte> payload)
        {
            var reader = new WireReader(payload);
            switch (status)
            {
                case WireStatus.Ok:
                {
                    var result = reply(ref reader, key);
                    reader.EndOfPayload();
                    if (Interlocked.Exchange(ref _done, 1) == 0)
                    {
                        _cancellation.Dispose();
                        _core.SetResult(result);
                    }

                    return;
                }

                case WireStatus.NotOwner:
                    Fail(new NotOwnerException((int)reader.ReadVarInt()));
                    break;
                case WireStatus.Unavailable:
                    // The retry-after that follows is the exception type's own; StorageUnavailableException has it.
                    Fail(new StorageUnavailableException(reader.ReadString()));
                    break;
                case WireStatus.Failed:
                    Fail(new RemoteCallException(reader.ReadString()));
                    break;
                default:
                    throw new InvalidDataException($"unknown reply status {(byte)status}");
            }
        }

        public override void Fail(Exception error)
        {
            if (Interlocked.Exchange(ref _done, 1) == 0)
            {
                _cancellation.Dispose();
                _core.SetException(error);
            }
        }

        public T GetResult(short token) => _core.GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }

    /// <summary>The handshake's reply.</summary>
    private sealed class Welcome
    {
        public string? SiloId { get; private set; }

        public string? Refusal { get; private set; }

        public bool Read(WireFrame frame)
        {
            var reader = new WireReader(frame.Payload);
            if (frame.Type == (byte)WireStatus.Refused)
            {
                Refusal = reader.ReadString();
                return false;
            }

            if (frame.Type != (byte)WireStatus.Ok || !reader.ReadBytes().AsSpan().SequenceEqual(WireProtocol.Magic))
            {
                throw new InvalidDataException("the peer is not a Presence silo");
            }

            var version = reader.ReadVarUInt();
            if (version != WireProtocol.Version)
            {
                throw new InvalidDataException($"the silo speaks protocol version {version}");
            }

            SiloId = reader.ReadString();
            return false;
        }
    }
}
