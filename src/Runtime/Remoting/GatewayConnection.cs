using System.Net.Sockets;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Remoting;

/// <summary>
/// A gateway's connection, on the silo's side. Calls are invoked in the read loop, in the order they arrive (so calls
/// to one device keep their order), and each reply is queued when its call completes: calls run concurrently.
/// </summary>
internal sealed class GatewayConnection
{
    private static readonly TimeSpan HandshakeTimeout = TimeSpan.FromSeconds(10);
    private const int MaxErrorMessageLength = 512;

    private readonly SiloServer _server;
    private readonly WireSocket _wire;
    private readonly string _remote;
    private readonly FrameHandler _onHello;
    private readonly FrameHandler _onCall;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _drained = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;
    private volatile bool _readingDone;
    private volatile bool _stopping;
    private bool _accepted;

    public GatewayConnection(SiloServer server, Socket socket)
    {
        _server = server;
        _wire = new WireSocket(socket);
        _remote = _wire.Remote;
        _onHello = OnHello;
        _onCall = OnCall;
    }

    public Task Completion => _completion.Task;

    private ISiloCalls Target => _server.Target;

    private ILogger Log => _server.Log;

    public async Task RunAsync()
    {
        Log.ConnectionOpened(_remote);
        try
        {
            using (var handshake = new CancellationTokenSource(HandshakeTimeout))
            {
                if (!await _wire.ReadFramesAsync(_onHello, handshake.Token).ConfigureAwait(false))
                {
                    return;
                }
            }

            if (!_accepted)
            {
                // Let the refusal reach the client before closing.
                _wire.CompleteWrites();
                await _wire.Writing.ConfigureAwait(false);
                return;
            }

            if (!_stopping)
            {
                await _wire.ReadFramesAsync(_onCall, CancellationToken.None).ConfigureAwait(false);
            }

            _readingDone = true;
            if (_stopping)
            {
                // Graceful stop: every call read so far gets its reply before the connection closes.
                if (Volatile.Read(ref _inFlight) == 0)
                {
                    _drained.TrySetResult();
                }

                await _drained.Task.ConfigureAwait(false);
                _wire.CompleteWrites();
                await _wire.Writing.ConfigureAwait(false);
            }
        }
        catch (InvalidDataException error)
        {
            Log.ProtocolViolation(_remote, error.Message);
        }
        catch (OperationCanceledException)
        {
            Log.ProtocolViolation(_remote, "no handshake in time");
        }
        catch (Exception error) when (error is IOException or SocketException or ObjectDisposedException)
        {
            // The gateway went away, or the connection was aborted.
        }
        catch (Exception error)
        {
            Log.ConnectionFailed(error, _remote);
        }
        finally
        {
            _wire.Dispose();
            Log.ConnectionClosed(_remote);
            _completion.TrySetResult();
        }
    }

    /// <summary>Stops reading calls; the connection closes once those read have been answered.</summary>
    public void Stop()
    {
        _stopping = true;
        _wire.CancelRead();
    }

    public void Abort()
    {
        _stopping = true;
        _drained.TrySetResult();
        _wire.Dispose();
    }

    private bool OnHello(WireFrame frame)
    {
        if (frame.Type != (byte)WireMethod.Hello)
        {
            throw new InvalidDataException("the first frame is not a handshake");
        }

        var reader = new WireReader(frame.Payload);
        var magic = reader.ReadBytes();
        if (!magic.AsSpan().SequenceEqual(WireProtocol.Magic))
        {
            throw new InvalidDataException("the handshake is not Presence's");
        }

        var version = reader.ReadVarUInt();
        byte[]? secretHash = reader.ReadBool() ? reader.ReadBytes() : null;
        reader.EndOfPayload();
        if (version != WireProtocol.Version)
        {
            Log.ProtocolViolation(_remote, $"protocol version {version}");
            Refuse($"protocol version {version} is not supported (this silo speaks {WireProtocol.Version})");
            return false;
        }

        var expected = _server.SecretHash;
        if (expected is not null && (secretHash is null || !CryptographicOperations.FixedTimeEquals(expected, secretHash)))
        {
            Log.SecretRefused(_remote);
            Refuse("the cluster secret was refused");
            return false;
        }

        _accepted = true;
        _wire.TrySend((byte)WireStatus.Ok, frame.Id, _server.SiloId, static (ref WireWriter writer, string siloId) =>
        {
            writer.WriteBytes(WireProtocol.Magic);
            writer.WriteVarUInt(WireProtocol.Version);
            writer.WriteString(siloId);
        });
        return false;
    }

    private void Refuse(string reason) =>
        _wire.TrySend((byte)WireStatus.Refused, 0, reason, static (ref WireWriter writer, string message) => writer.WriteString(message));

    private bool OnCall(WireFrame frame)
    {
        var reader = new WireReader(frame.Payload);
        var id = frame.Id;
        switch ((WireMethod)frame.Type)
        {
            case WireMethod.Heartbeat:
            {
                var key = WireCodec.ReadKey(ref reader);
                var input = WireCodec.ReadHeartbeatInput(ref reader);
                reader.EndOfPayload();
                Reply(id, WireMethod.Heartbeat, key, Invoke(static (t, a) => t.HeartbeatAsync(a.key, a.input), (key, input)), Payloads.Heartbeat);
                break;
            }

            case WireMethod.Provision:
            {
                var key = WireCodec.ReadKey(ref reader);
                var input = WireCodec.ReadProvisionInput(ref reader);
                reader.EndOfPayload();
                Reply(id, WireMethod.Provision, key, Invoke(static (t, a) => t.ProvisionAsync(a.key, a.input), (key, input)), Payloads.Provision);
                break;
            }

            case WireMethod.Get:
            {
                var key = WireCodec.ReadKey(ref reader);
                reader.EndOfPayload();
                Reply(id, WireMethod.Get, key, Invoke(static (t, k) => t.GetAsync(k), key), Payloads.Device);
                break;
            }

            case WireMethod.Remove:
            {
                var key = WireCodec.ReadKey(ref reader);
                reader.EndOfPayload();
                Reply(id, WireMethod.Remove, key, Invoke(static (t, k) => t.RemoveAsync(k), key), Payloads.Bool);
                break;
            }

            case WireMethod.Sessions:
            {
                var key = WireCodec.ReadKey(ref reader);
                var limit = (int)Math.Clamp(reader.ReadVarInt(), int.MinValue, int.MaxValue);
                reader.EndOfPayload();
                Reply(id, WireMethod.Sessions, key, Invoke(static (t, a) => t.GetSessionsAsync(a.key, a.limit), (key, limit)), Payloads.Sessions);
                break;
            }

            case WireMethod.ChannelOpened:
            case WireMethod.ChannelClosed:
            {
                var key = WireCodec.ReadKey(ref reader);
                reader.EndOfPayload();
                var call = frame.Type == (byte)WireMethod.ChannelOpened
                    ? Invoke(static (t, k) => Done(t.ChannelOpenedAsync(k)), key)
                    : Invoke(static (t, k) => Done(t.ChannelClosedAsync(k)), key);
                Reply(id, (WireMethod)frame.Type, key, call, Payloads.Nothing);
                break;
            }

            case WireMethod.CommandResult:
            {
                var key = WireCodec.ReadKey(ref reader);
                var result = WireCodec.ReadCommandResult(ref reader);
                reader.EndOfPayload();
                Reply(id, WireMethod.CommandResult, key, Invoke(static (t, a) => t.CommandResultAsync(a.key, a.result), (key, result)), Payloads.Bool);
                break;
            }

            case WireMethod.HeartbeatsLastMinute:
            {
                var tenant = reader.ReadString();
                reader.EndOfPayload();
                var call = Invoke(static (t, tenant) => new ValueTask<long>(t.HeartbeatsLastMinute(tenant)), tenant);
                Reply(id, WireMethod.HeartbeatsLastMinute, new DeviceKey(tenant, ""), call, Payloads.Number);
                break;
            }

            default:
                throw new InvalidDataException($"unknown call type {frame.Type}");
        }

        return true;
    }

    /// <summary>Calls the silo; a synchronous throw becomes a failed call like an asynchronous one.</summary>
    private ValueTask<T> Invoke<TArgs, T>(Func<ISiloCalls, TArgs, ValueTask<T>> call, TArgs args)
    {
        try
        {
            return call(Target, args);
        }
        catch (Exception error)
        {
            return ValueTask.FromException<T>(error);
        }
    }

    private static ValueTask<bool> Done(ValueTask call)
    {
        return call.IsCompletedSuccessfully ? new ValueTask<bool>(true) : AwaitAsync(call);

        static async ValueTask<bool> AwaitAsync(ValueTask call)
        {
            await call.ConfigureAwait(false);
            return true;
        }
    }

    private void Reply<T>(int id, WireMethod method, DeviceKey key, ValueTask<T> call, PayloadWriter<T> payload)
    {
        Interlocked.Increment(ref _inFlight);
        if (call.IsCompletedSuccessfully)
        {
            Send(id, method, key, call.Result, payload);
            Finished();
            return;
        }

        _ = ReplyAsync(id, method, key, call, payload);
    }

    private async Task ReplyAsync<T>(int id, WireMethod method, DeviceKey key, ValueTask<T> call, PayloadWriter<T> payload)
    {
        try
        {
            T result;
            try
            {
                result = await call.ConfigureAwait(false);
            }
            catch (Exception error)
            {
                SendError(id, method, key, error);
                return;
            }

            Send(id, method, key, result, payload);
        }
        finally
        {
            Finished();
        }
    }

    private void Finished()
    {
        if (Interlocked.Decrement(ref _inFlight) == 0 && _readingDone)
        {
            _drained.TrySetResult();
        }
    }

    private void Send<T>(int id, WireMethod method, DeviceKey key, T result, PayloadWriter<T> payload)
    {
        try
        {
            _wire.TrySend((byte)WireStatus.Ok, id, result, payload);
        }
        catch (InvalidDataException error)
        {
            // The reply is too large for a frame: the call fails rather than the connection.
            SendError(id, method, key, error);
        }
    }

    private void SendError(int id, WireMethod method, DeviceKey key, Exception error)
    {
        switch (error)
        {
            case NotOwnerException notOwner:
                _wire.TrySend((byte)WireStatus.NotOwner, id, notOwner.Partition, Payloads.Partition);
                break;
            case PartitionFencedException fenced:
                _wire.TrySend((byte)WireStatus.NotOwner, id, fenced.Partition, Payloads.Partition);
                break;
            case UnavailableException unavailable:
                _wire.TrySend((byte)WireStatus.Unavailable, id, (unavailable.Message, unavailable.RetryAfter), Payloads.Unavailable);
                break;
            default:
                Log.CallFailed(error, method.ToString(), key.TenantId, key.ShortId);
                var message = $"{error.GetType().Name}: {error.Message}";
                if (message.Length > MaxErrorMessageLength)
                {
                    message = message[..MaxErrorMessageLength];
                }

                _wire.TrySend((byte)WireStatus.Failed, id, message, Payloads.Text);
                break;
        }
    }

    /// <summary>Reply payload writers, one static instance each.</summary>
    private static class Payloads
    {
        public static readonly PayloadWriter<HeartbeatResult> Heartbeat = WireCodec.WriteHeartbeatResult;
        public static readonly PayloadWriter<ProvisionResult> Provision = WireCodec.WriteProvisionResult;
        public static readonly PayloadWriter<DeviceRecord?> Device = WireCodec.WriteNullableDevice;
        public static readonly PayloadWriter<IReadOnlyList<SessionRecord>?> Sessions = WireCodec.WriteSessions;
        public static readonly PayloadWriter<bool> Bool = static (ref WireWriter writer, bool value) => writer.WriteBool(value);
        public static readonly PayloadWriter<bool> Nothing = static (ref WireWriter _, bool _) => { };
        public static readonly PayloadWriter<long> Number = static (ref WireWriter writer, long value) => writer.WriteVarInt(value);
        public static readonly PayloadWriter<int> Partition = static (ref WireWriter writer, int partition) => writer.WriteVarInt(partition);
        public static readonly PayloadWriter<string> Text = static (ref WireWriter writer, string text) => writer.WriteString(text);

        public static readonly PayloadWriter<(string Message, TimeSpan RetryAfter)> Unavailable =
            static (ref WireWriter writer, (string Message, TimeSpan RetryAfter) error) =>
            {
                writer.WriteString(error.Message);
                writer.WriteDuration(error.RetryAfter);
            };
    }
}
