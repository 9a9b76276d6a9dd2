using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Presence.Grains.Abstractions;

namespace Presence.Runtime.Remoting;

/// <summary>
/// Writes the wire protocol's values into an <see cref="IBufferWriter{T}"/>: little-endian fixed-size numbers,
/// LEB128 lengths, UTF-8 strings with a length prefix, and a presence byte or a length of 0 for null.
/// </summary>
internal ref struct WireWriter(IBufferWriter<byte> output)
{
    private readonly IBufferWriter<byte> _output = output;
    private Span<byte> _span;
    private int _written;

    /// <summary>Commits what was written to the buffer writer; call once at the end.</summary>
    public void Flush()
    {
        _output.Advance(_written);
        _span = default;
        _written = 0;
    }

    private Span<byte> Reserve(int size)
    {
        if (_span.Length - _written < size)
        {
            _output.Advance(_written);
            _written = 0;
            _span = _output.GetSpan(size);
        }

        return _span.Slice(_written, size);
    }

    public void WriteByte(byte value)
    {
        Reserve(1)[0] = value;
        _written++;
    }

    public void WriteBool(bool value) => WriteByte(value ? (byte)1 : (byte)0);

    public void WriteInt64(long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(Reserve(8), value);
        _written += 8;
    }

    public void WriteDouble(double value)
    {
        BinaryPrimitives.WriteDoubleLittleEndian(Reserve(8), value);
        _written += 8;
    }

    public void WriteVarUInt(ulong value)
    {
        var span = Reserve(10);
        var i = 0;
        while (value >= 0x80)
        {
            span[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        span[i++] = (byte)value;
        _written += i;
    }

    /// <summary>Zig-zag, so small negative numbers stay short.</summary>
    public void WriteVarInt(long value) => WriteVarUInt((ulong)((value << 1) ^ (value >> 63)));

    public void WriteTime(DateTime utc) => WriteInt64(utc.Ticks);

    public void WriteDuration(TimeSpan duration) => WriteVarInt(duration.Ticks);

    /// <summary>Byte length + 1, then UTF-8; a length of 0 is null.</summary>
    public void WriteString(string? value)
    {
        if (value is null)
        {
            WriteByte(0);
            return;
        }

        var length = Encoding.UTF8.GetByteCount(value);
        WriteVarUInt((ulong)length + 1);
        var span = Reserve(length);
        Encoding.UTF8.GetBytes(value, span);
        _written += length;
    }

    public void WriteBytes(ReadOnlySpan<byte> value)
    {
        WriteVarUInt((ulong)value.Length);
        value.CopyTo(Reserve(value.Length));
        _written += value.Length;
    }
}

/// <summary>Reads what <see cref="WireWriter"/> wrote; throws <see cref="InvalidDataException"/> on a malformed payload.</summary>
internal ref struct WireReader(ReadOnlySpan<byte> payload)
{
    private readonly ReadOnlySpan<byte> _payload = payload;
    private int _position;

    public readonly int Remaining => _payload.Length - _position;

    private ReadOnlySpan<byte> Take(int size)
    {
        if ((uint)size > (uint)Remaining)
        {
            throw new InvalidDataException("the payload ends early");
        }

        var span = _payload.Slice(_position, size);
        _position += size;
        return span;
    }

    /// <summary>Checks that the whole payload was read (a longer one is malformed, not ignored).</summary>
    public readonly void EndOfPayload()
    {
        if (Remaining != 0)
        {
            throw new InvalidDataException($"{Remaining} unexpected bytes at the end of the payload");
        }
    }

    public byte ReadByte() => Take(1)[0];

    public bool ReadBool() => ReadByte() switch
    {
        0 => false,
        1 => true,
        var other => throw new InvalidDataException($"{other} is not a boolean"),
    };

    public long ReadInt64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    public double ReadDouble() => BinaryPrimitives.ReadDoubleLittleEndian(Take(8));

    public ulong ReadVarUInt()
    {
        ulong value = 0;
        for (var shift = 0; shift < 70; shift += 7)
        {
            var b = ReadByte();
            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw new InvalidDataException("a variable-length number is too long");
    }

    public long ReadVarInt()
    {
        var raw = ReadVarUInt();
        return (long)(raw >> 1) ^ -(long)(raw & 1);
    }

    /// <summary>A count of items each at least <paramref name="minItemSize"/> bytes long: never more than the payload holds.</summary>
    public int ReadCount(int minItemSize = 1)
    {
        var count = ReadVarUInt();
        if (count > (ulong)(Remaining / minItemSize))
        {
            throw new InvalidDataException($"a count of {count} exceeds the payload");
        }

        return (int)count;
    }

    public DateTime ReadTime()
    {
        var ticks = ReadInt64();
        if ((ulong)ticks > (ulong)DateTime.MaxValue.Ticks)
        {
            throw new InvalidDataException("a time is out of range");
        }

        return new DateTime(ticks, DateTimeKind.Utc);
    }

    public TimeSpan ReadDuration() => new(ReadVarInt());

    public string? ReadNullableString()
    {
        var length = ReadVarUInt();
        if (length == 0)
        {
            return null;
        }

        if (length - 1 > (ulong)Remaining)
        {
            throw new InvalidDataException("a string exceeds the payload");
        }

        var bytes = Take((int)(length - 1));
        return bytes.IsEmpty ? string.Empty : Encoding.UTF8.GetString(bytes);
    }

    public string ReadString() => ReadNullableString() ?? throw new InvalidDataException("a required string is null");

    public byte[] ReadBytes() => Take(ReadCount()).ToArray();

    /// <summary>An enum's byte, checked against its largest value.</summary>
    public byte ReadByte(byte max, string what)
    {
        var value = ReadByte();
        if (value > max)
        {
            throw new InvalidDataException($"{value} is not a {what}");
        }

        return value;
    }
}

/// <summary>
/// The payloads of every <see cref="IDeviceGrains"/> call and reply. Values round-trip exactly, with one deliberate
/// exception: a heartbeat's reply carries a lean device (see <see cref="WriteHeartbeatResult"/>).
/// </summary>
internal static class WireCodec
{
    public static void WriteKey(ref WireWriter writer, DeviceKey key)
    {
        writer.WriteString(key.TenantId);
        writer.WriteString(key.DeviceId);
    }

    public static DeviceKey ReadKey(ref WireReader reader) => new(reader.ReadString(), reader.ReadString());

    public static void WriteMetrics(ref WireWriter writer, MetricSet metrics)
    {
        var keys = metrics.Keys;
        var values = metrics.Values;
        writer.WriteVarUInt((ulong)keys.Length);
        for (var i = 0; i < keys.Length; i++)
        {
            writer.WriteString(keys[i]);
            writer.WriteDouble(values[i]);
        }
    }

    /// <param name="shareKeys">Intern the key array (<see cref="SharedValues.KeySet"/>): the silo keeps it in the grain.</param>
    public static MetricSet ReadMetrics(ref WireReader reader, bool shareKeys)
    {
        var count = reader.ReadCount(minItemSize: 9);
        if (count == 0)
        {
            return MetricSet.Empty;
        }

        var keys = new string[count];
        var values = new double[count];
        for (var i = 0; i < count; i++)
        {
            keys[i] = reader.ReadString();
            values[i] = reader.ReadDouble();
        }

        return new MetricSet(shareKeys ? SharedValues.KeySet(keys) : keys, values);
    }

    public static void WriteContainers(ref WireWriter writer, IReadOnlyList<ContainerInfo> containers)
    {
        writer.WriteVarUInt((ulong)containers.Count);
        for (var i = 0; i < containers.Count; i++)
        {
            var container = containers[i];
            writer.WriteString(container.Name);
            writer.WriteString(container.Image);
            writer.WriteString(container.State);
            writer.WriteString(container.Ports);
        }
    }

    public static IReadOnlyList<ContainerInfo> ReadContainers(ref WireReader reader)
    {
        var count = reader.ReadCount(minItemSize: 4);
        if (count == 0)
        {
            return [];
        }

        var containers = new ContainerInfo[count];
        for (var i = 0; i < count; i++)
        {
            containers[i] = new ContainerInfo(reader.ReadString(), reader.ReadString(), reader.ReadString(), reader.ReadString());
        }

        return containers;
    }

    public static void WriteLabels(ref WireWriter writer, IReadOnlyDictionary<string, string> labels)
    {
        writer.WriteVarUInt((ulong)labels.Count);
        foreach (var (name, value) in labels)
        {
            writer.WriteString(name);
            writer.WriteString(value);
        }
    }

    public static IReadOnlyDictionary<string, string> ReadLabels(ref WireReader reader)
    {
        var count = reader.ReadCount(minItemSize: 2);
        if (count == 0)
        {
            return DeviceRecord.NoLabels;
        }

        var labels = new Dictionary<string, string>(count, StringComparer.Ordinal);
        for (var i = 0; i < count; i++)
        {
            if (!labels.TryAdd(reader.ReadString(), reader.ReadString()))
            {
                throw new InvalidDataException("a label name is repeated");
            }
        }

        return labels;
    }

    public static void WriteCredential(ref WireWriter writer, DeviceCredential? credential)
    {
        writer.WriteBool(credential is not null);
        if (credential is not null)
        {
            writer.WriteInt64(credential.Stamp);
            writer.WriteBytes(credential.Hash);
        }
    }

    public static DeviceCredential? ReadCredential(ref WireReader reader) =>
        reader.ReadBool() ? new DeviceCredential(reader.ReadInt64(), reader.ReadBytes()) : null;

    public static void WriteHeartbeatInput(ref WireWriter writer, HeartbeatInput input)
    {
        writer.WriteString(input.DeviceId);
        writer.WriteString(input.DeviceName);
        writer.WriteString(input.Platform);
        writer.WriteString(input.AppVersion);
        writer.WriteBool(input.Metrics is not null);
        if (input.Metrics is { } metrics)
        {
            WriteMetrics(ref writer, metrics);
        }

        writer.WriteBool(input.Containers is not null);
        if (input.Containers is { } containers)
        {
            WriteContainers(ref writer, containers);
        }

        writer.WriteBool(input.CredentialStamp is not null);
        if (input.CredentialStamp is { } stamp)
        {
            writer.WriteInt64(stamp);
        }
    }

    /// <summary>Decoded on the silo: platform, app version and metric keys are interned (<see cref="SharedValues"/>).</summary>
    public static HeartbeatInput ReadHeartbeatInput(ref WireReader reader)
    {
        var deviceId = reader.ReadString();
        var deviceName = reader.ReadNullableString();
        var platform = SharedValues.Text(reader.ReadNullableString());
        var appVersion = SharedValues.Text(reader.ReadNullableString());
        MetricSet? metrics = reader.ReadBool() ? ReadMetrics(ref reader, shareKeys: true) : null;
        var containers = reader.ReadBool() ? ReadContainers(ref reader) : null;
        long? stamp = reader.ReadBool() ? reader.ReadInt64() : null;
        return new HeartbeatInput(deviceId, deviceName, platform, appVersion, metrics, containers) { CredentialStamp = stamp };
    }

    public static void WriteProvisionInput(ref WireWriter writer, ProvisionInput input)
    {
        writer.WriteString(input.DeviceName);
        writer.WriteBool(input.Timeout is not null);
        if (input.Timeout is { } timeout)
        {
            writer.WriteDuration(timeout);
        }

        writer.WriteBool(input.Labels is not null);
        if (input.Labels is { } labels)
        {
            WriteLabels(ref writer, labels);
        }

        WriteCredential(ref writer, input.Credential);
    }

    public static ProvisionInput ReadProvisionInput(ref WireReader reader)
    {
        var name = reader.ReadNullableString();
        TimeSpan? timeout = reader.ReadBool() ? reader.ReadDuration() : null;
        var labels = reader.ReadBool() ? ReadLabels(ref reader) : null;
        return new ProvisionInput(name, timeout, labels, ReadCredential(ref reader));
    }

    public static void WriteCommandResult(ref WireWriter writer, CommandResult result)
    {
        writer.WriteString(result.CommandId);
        writer.WriteBool(result.Ok);
        writer.WriteString(result.Output);
    }

    public static CommandResult ReadCommandResult(ref WireReader reader) =>
        new(reader.ReadString(), reader.ReadBool(), reader.ReadNullableString());

    public static void WriteSessions(ref WireWriter writer, IReadOnlyList<SessionRecord>? sessions)
    {
        if (sessions is null)
        {
            writer.WriteVarUInt(0);
            return;
        }

        writer.WriteVarUInt((ulong)sessions.Count + 1);
        for (var i = 0; i < sessions.Count; i++)
        {
            var session = sessions[i];
            writer.WriteInt64(session.SessionId);
            writer.WriteTime(session.StartedAt);
            writer.WriteBool(session.EndedAt is not null);
            if (session.EndedAt is { } ended)
            {
                writer.WriteTime(ended);
            }

            // 0 for none, else the reason + 1.
            writer.WriteByte(session.EndReason is { } reason ? (byte)(reason + 1) : (byte)0);
            writer.WriteVarInt(session.Heartbeats);
        }
    }

    public static IReadOnlyList<SessionRecord>? ReadSessions(ref WireReader reader)
    {
        var marker = reader.ReadVarUInt();
        if (marker == 0)
        {
            return null;
        }

        if (marker - 1 > (ulong)(reader.Remaining / 19))
        {
            throw new InvalidDataException("a session count exceeds the payload");
        }

        var sessions = new SessionRecord[(int)(marker - 1)];
        for (var i = 0; i < sessions.Length; i++)
        {
            var id = reader.ReadInt64();
            var started = reader.ReadTime();
            DateTime? ended = reader.ReadBool() ? reader.ReadTime() : null;
            var reason = reader.ReadByte((byte)StatusReason.Removed + 1, nameof(StatusReason));
            StatusReason? endReason = reason == 0 ? null : (StatusReason)(reason - 1);
            sessions[i] = new SessionRecord(id, started, ended, endReason, reader.ReadVarInt());
        }

        return sessions;
    }

    public static void WriteDevice(ref WireWriter writer, DeviceRecord device)
    {
        writer.WriteString(device.TenantId);
        writer.WriteString(device.DeviceId);
        writer.WriteString(device.DeviceName);
        writer.WriteString(device.Platform);
        writer.WriteString(device.AppVersion);
        writer.WriteByte((byte)device.Status);
        writer.WriteTime(device.FirstSeenAt);
        writer.WriteTime(device.LastSeenAt);
        writer.WriteTime(device.StatusChangedAt);
        writer.WriteInt64(device.SessionId);
        writer.WriteTime(device.SessionStartedAt);
        writer.WriteVarInt(device.SessionHeartbeats);
        WriteMetrics(ref writer, device.Metrics);
        WriteContainers(ref writer, device.Containers);
        WriteLabels(ref writer, device.Labels);
        writer.WriteDuration(device.Timeout);
        writer.WriteVarInt(device.Version);
        writer.WriteVarInt(device.Sequence);
        WriteCredential(ref writer, device.Credential);
    }

    public static DeviceRecord ReadDevice(ref WireReader reader) => new()
    {
        TenantId = reader.ReadString(),
        DeviceId = reader.ReadString(),
        DeviceName = reader.ReadString(),
        Platform = reader.ReadNullableString(),
        AppVersion = reader.ReadNullableString(),
        Status = (DeviceStatus)reader.ReadByte((byte)DeviceStatus.Online, nameof(DeviceStatus)),
        FirstSeenAt = reader.ReadTime(),
        LastSeenAt = reader.ReadTime(),
        StatusChangedAt = reader.ReadTime(),
        SessionId = reader.ReadInt64(),
        SessionStartedAt = reader.ReadTime(),
        SessionHeartbeats = reader.ReadVarInt(),
        Metrics = ReadMetrics(ref reader, shareKeys: false),
        Containers = ReadContainers(ref reader),
        Labels = ReadLabels(ref reader),
        Timeout = reader.ReadDuration(),
        Version = reader.ReadVarInt(),
        Sequence = reader.ReadVarInt(),
        Credential = ReadCredential(ref reader),
    };

    public static void WriteNullableDevice(ref WireWriter writer, DeviceRecord? device)
    {
        writer.WriteBool(device is not null);
        if (device is not null)
        {
            WriteDevice(ref writer, device);
        }
    }

    public static DeviceRecord? ReadNullableDevice(ref WireReader reader) => reader.ReadBool() ? ReadDevice(ref reader) : null;

    /// <summary>
    /// An accepted heartbeat's device is lean: what the acknowledgement needs (name, status, timeout, session) plus
    /// last seen, version and sequence. Tenant and device id are the call's key; metrics, containers, labels and the
    /// credential are left out, so the reply to a heartbeat stays a few dozen bytes.
    /// </summary>
    public static void WriteHeartbeatResult(ref WireWriter writer, HeartbeatResult result)
    {
        writer.WriteByte((byte)result.Outcome);
        writer.WriteDuration(result.RetryAfter);
        writer.WriteBool(result.Device is not null);
        if (result.Device is { } device)
        {
            writer.WriteString(device.DeviceName);
            writer.WriteByte((byte)device.Status);
            writer.WriteDuration(device.Timeout);
            writer.WriteInt64(device.SessionId);
            writer.WriteTime(device.LastSeenAt);
            writer.WriteVarInt(device.Version);
            writer.WriteVarInt(device.Sequence);
        }
    }

    public static HeartbeatResult ReadHeartbeatResult(ref WireReader reader, DeviceKey key)
    {
        var outcome = (HeartbeatOutcome)reader.ReadByte((byte)HeartbeatOutcome.Unauthorized, nameof(HeartbeatOutcome));
        var retryAfter = reader.ReadDuration();
        DeviceRecord? device = null;
        if (reader.ReadBool())
        {
            device = new DeviceRecord
            {
                TenantId = key.TenantId,
                DeviceId = key.DeviceId,
                DeviceName = reader.ReadString(),
                Status = (DeviceStatus)reader.ReadByte((byte)DeviceStatus.Online, nameof(DeviceStatus)),
                Timeout = reader.ReadDuration(),
                SessionId = reader.ReadInt64(),
                LastSeenAt = reader.ReadTime(),
                Version = reader.ReadVarInt(),
                Sequence = reader.ReadVarInt(),
            };
        }

        return new HeartbeatResult(outcome, device, retryAfter);
    }

    public static void WriteProvisionResult(ref WireWriter writer, ProvisionResult result)
    {
        writer.WriteBool(result.Created);
        WriteDevice(ref writer, result.Device);
    }

    public static ProvisionResult ReadProvisionResult(ref WireReader reader)
    {
        var created = reader.ReadBool();
        return new ProvisionResult(ReadDevice(ref reader), created);
    }
}
