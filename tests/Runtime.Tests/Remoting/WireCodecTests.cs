using System.Buffers;
using Presence.Grains.Abstractions;
using Presence.Runtime.Remoting;

namespace Presence.Runtime.Tests.Remoting;

public sealed class WireCodecTests
{
    private delegate void Write<in T>(ref WireWriter writer, T value);

    private delegate T Read<out T>(ref WireReader reader);

    private static T RoundTrip<T>(T value, Write<T> write, Read<T> read)
    {
        var buffer = new ArrayBufferWriter<byte>(1);
        var writer = new WireWriter(buffer);
        write(ref writer, value);
        writer.Flush();
        var reader = new WireReader(buffer.WrittenSpan);
        var copy = read(ref reader);
        reader.EndOfPayload();
        return copy;
    }

    private static readonly string Unicode = "Gerät 温度 \U0001F600 ñ";

    public static TheoryData<string?> Strings => new() { null, "", "a", Unicode, new string('x', 70_000) };

    [Theory]
    [MemberData(nameof(Strings))]
    public void Strings_round_trip_including_null_and_empty(string? value)
    {
        Assert.Equal(value, RoundTrip(value, static (ref WireWriter w, string? v) => w.WriteString(v), static (ref WireReader r) => r.ReadNullableString()));
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(1L)]
    [InlineData(-1L)]
    [InlineData(127L)]
    [InlineData(128L)]
    [InlineData(long.MaxValue)]
    [InlineData(long.MinValue)]
    public void Numbers_round_trip_at_their_edges(long value)
    {
        Assert.Equal(value, RoundTrip(value, static (ref WireWriter w, long v) => w.WriteVarInt(v), static (ref WireReader r) => r.ReadVarInt()));
        Assert.Equal(value, RoundTrip(value, static (ref WireWriter w, long v) => w.WriteInt64(v), static (ref WireReader r) => r.ReadInt64()));
        var span = TimeSpan.FromTicks(value);
        Assert.Equal(span, RoundTrip(span, static (ref WireWriter w, TimeSpan v) => w.WriteDuration(v), static (ref WireReader r) => r.ReadDuration()));
    }

    [Fact]
    public void Keys_round_trip()
    {
        var key = new DeviceKey("tenant-ü", "dev:01@site.a");
        Assert.Equal(key, RoundTrip(key, WireCodec.WriteKey, WireCodec.ReadKey));
    }

    [Fact]
    public void A_full_heartbeat_input_round_trips_with_shared_platform_and_metric_keys()
    {
        var input = new HeartbeatInput(
            "dev-1",
            Unicode,
            "linux",
            "1.2.3",
            new MetricSet(["cpu_pct", "mem.used", "nan", "inf"], [12.5, -0.0, double.NaN, double.PositiveInfinity]),
            [new ContainerInfo("web", "nginx:1", "running", "80/tcp"), new ContainerInfo("", "", "", "")])
        {
            CredentialStamp = long.MinValue,
        };

        var copy = RoundTrip(input, WireCodec.WriteHeartbeatInput, WireCodec.ReadHeartbeatInput);
        var again = RoundTrip(input, WireCodec.WriteHeartbeatInput, WireCodec.ReadHeartbeatInput);

        Assert.Equal(input.DeviceId, copy.DeviceId);
        Assert.Equal(input.DeviceName, copy.DeviceName);
        Assert.Equal(input.Platform, copy.Platform);
        Assert.Equal(input.AppVersion, copy.AppVersion);
        Assert.Equal(input.Metrics!.Value.Keys, copy.Metrics!.Value.Keys);
        Assert.Equal(input.Metrics.Value.Values, copy.Metrics.Value.Values);
        Assert.Equal(input.Containers, copy.Containers);
        Assert.Equal(input.CredentialStamp, copy.CredentialStamp);
        Assert.Same(copy.Metrics.Value.Keys, again.Metrics!.Value.Keys);
        Assert.Same(copy.Platform, again.Platform);
    }

    [Fact]
    public void A_bare_heartbeat_input_keeps_its_nulls()
    {
        var copy = RoundTrip(new HeartbeatInput("d"), WireCodec.WriteHeartbeatInput, WireCodec.ReadHeartbeatInput);

        Assert.Equal(new HeartbeatInput("d"), copy);
    }

    [Fact]
    public void Empty_metrics_and_containers_stay_empty_not_null()
    {
        var input = new HeartbeatInput("d", Metrics: MetricSet.Empty, Containers: []);

        var copy = RoundTrip(input, WireCodec.WriteHeartbeatInput, WireCodec.ReadHeartbeatInput);

        Assert.Equal(0, copy.Metrics!.Value.Count);
        Assert.Empty(copy.Containers!);
    }

    [Fact]
    public void Provision_inputs_round_trip_with_and_without_each_field()
    {
        var full = new ProvisionInput(
            "Büro 3",
            TimeSpan.FromSeconds(DeviceRules.MaxTimeoutSeconds),
            new Dictionary<string, string> { ["rack"] = "3", ["zone/x"] = Unicode, ["empty"] = "" },
            new DeviceCredential(long.MaxValue, [0, 1, 2, 255]));

        var copy = RoundTrip(full, WireCodec.WriteProvisionInput, WireCodec.ReadProvisionInput);
        var bare = RoundTrip(new ProvisionInput(), WireCodec.WriteProvisionInput, WireCodec.ReadProvisionInput);
        var emptyLabels = RoundTrip(new ProvisionInput(Labels: new Dictionary<string, string>()), WireCodec.WriteProvisionInput, WireCodec.ReadProvisionInput);

        Assert.Equal(full.DeviceName, copy.DeviceName);
        Assert.Equal(full.Timeout, copy.Timeout);
        Assert.Equal(full.Labels!.OrderBy(l => l.Key, StringComparer.Ordinal), copy.Labels!.OrderBy(l => l.Key, StringComparer.Ordinal));
        Assert.Equal(full.Credential!.Stamp, copy.Credential!.Stamp);
        Assert.Equal(full.Credential.Hash, copy.Credential.Hash);
        Assert.Equal(new ProvisionInput(), bare);
        Assert.Same(DeviceRecord.NoLabels, emptyLabels.Labels);
    }

    [Theory]
    [InlineData("c-1", true, null)]
    [InlineData("c-2", false, "")]
    [InlineData("c-3", true, "Ausgabe \U0001F600")]
    public void Command_results_round_trip(string id, bool ok, string? output)
    {
        var result = new CommandResult(id, ok, output);
        Assert.Equal(result, RoundTrip(result, WireCodec.WriteCommandResult, WireCodec.ReadCommandResult));
    }

    [Fact]
    public void Sessions_round_trip_with_every_end_reason_and_none()
    {
        var start = new DateTime(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc);
        IReadOnlyList<SessionRecord> sessions =
        [
            new(long.MaxValue, start, null, null, 0),
            .. Enum.GetValues<StatusReason>().Select((reason, i) => new SessionRecord(i + 1, start.AddHours(-i - 1), start.AddMinutes(-i), reason, long.MaxValue - i)),
            new(-1, DateTime.MinValue, DateTime.MaxValue, StatusReason.Removed, 1),
        ];

        Assert.Equal(sessions, RoundTrip(sessions, WireCodec.WriteSessions, WireCodec.ReadSessions));
        Assert.Null(RoundTrip(null, WireCodec.WriteSessions, WireCodec.ReadSessions));
        Assert.Empty(RoundTrip([], WireCodec.WriteSessions, WireCodec.ReadSessions)!);
    }

    [Theory]
    [InlineData(DeviceStatus.Online)]
    [InlineData(DeviceStatus.Offline)]
    public void A_full_device_record_round_trips(DeviceStatus status)
    {
        var device = RemotingTestData.FullDevice("dev-1") with { Status = status };

        var copy = RoundTrip(device, WireCodec.WriteDevice, WireCodec.ReadDevice);

        RemotingTestData.AssertSameDevice(device, copy);
    }

    [Fact]
    public void A_never_seen_device_without_extras_round_trips()
    {
        var device = new DeviceRecord { TenantId = "t", DeviceId = "d", DeviceName = "" };

        var copy = RoundTrip(device, WireCodec.WriteNullableDevice, WireCodec.ReadNullableDevice)!;

        RemotingTestData.AssertSameDevice(device, copy);
        Assert.Same(DeviceRecord.NoLabels, copy.Labels);
        Assert.Null(RoundTrip(null, WireCodec.WriteNullableDevice, WireCodec.ReadNullableDevice));
    }

    [Fact]
    public void An_accepted_heartbeat_result_carries_the_lean_device()
    {
        var key = new DeviceKey("t", "dev-1");
        var device = RemotingTestData.FullDevice("dev-1") with { TenantId = "t" };

        var copy = RoundTrip(HeartbeatResult.Accepted(device), WireCodec.WriteHeartbeatResult, (ref WireReader r) => WireCodec.ReadHeartbeatResult(ref r, key));

        Assert.Equal(HeartbeatOutcome.Accepted, copy.Outcome);
        var lean = copy.Device!;
        Assert.Equal((device.TenantId, device.DeviceId, device.DeviceName, device.Status, device.Timeout, device.SessionId, device.LastSeenAt, device.Version, device.Sequence),
            (lean.TenantId, lean.DeviceId, lean.DeviceName, lean.Status, lean.Timeout, lean.SessionId, lean.LastSeenAt, lean.Version, lean.Sequence));
        Assert.Equal(0, lean.Metrics.Count);
        Assert.Empty(lean.Containers);
        Assert.Empty(lean.Labels);
        Assert.Null(lean.Credential);
    }

    [Fact]
    public void Refused_heartbeat_results_round_trip()
    {
        var key = new DeviceKey("t", "d");
        Read<HeartbeatResult> read = (ref WireReader r) => WireCodec.ReadHeartbeatResult(ref r, key);

        Assert.Equal(HeartbeatResult.Limited(TimeSpan.FromMilliseconds(1500)), RoundTrip(HeartbeatResult.Limited(TimeSpan.FromMilliseconds(1500)), WireCodec.WriteHeartbeatResult, read));
        Assert.Equal(HeartbeatResult.Unauthorized, RoundTrip(HeartbeatResult.Unauthorized, WireCodec.WriteHeartbeatResult, read));
    }

    [Fact]
    public void Provision_results_round_trip()
    {
        var result = new ProvisionResult(RemotingTestData.FullDevice("dev-1"), Created: true);

        var copy = RoundTrip(result, WireCodec.WriteProvisionResult, WireCodec.ReadProvisionResult);

        Assert.True(copy.Created);
        RemotingTestData.AssertSameDevice(result.Device, copy.Device);
    }

    [Fact]
    public void Every_truncation_of_a_payload_is_rejected_as_malformed()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new WireWriter(buffer);
        WireCodec.WriteDevice(ref writer, RemotingTestData.FullDevice("dev-1"));
        writer.Flush();
        var bytes = buffer.WrittenSpan.ToArray();

        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.Throws<InvalidDataException>(() =>
            {
                var reader = new WireReader(bytes.AsSpan(0, length));
                WireCodec.ReadDevice(ref reader);
                reader.EndOfPayload();
            });
        }
    }

    [Fact]
    public void Counts_beyond_the_payload_and_unknown_enum_values_are_rejected()
    {
        byte[] hugeCount = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 1, 2, 3];
        byte[] badStatus = [7];

        Assert.Throws<InvalidDataException>(() =>
        {
            var reader = new WireReader(hugeCount);
            WireCodec.ReadContainers(ref reader);
        });
        Assert.Throws<InvalidDataException>(() =>
        {
            var reader = new WireReader(badStatus);
            reader.ReadByte((byte)DeviceStatus.Online, nameof(DeviceStatus));
        });
    }

    [Fact]
    public void A_frame_over_the_limit_is_not_appended()
    {
        var frames = new FrameBuffer();
        var small = new string('a', 100);
        var huge = new string('a', WireProtocol.MaxFrameSize);

        Assert.True(frames.TryAppend(1, 1, small, static (ref WireWriter w, string s) => w.WriteString(s)));
        var length = frames.Length;
        Assert.False(frames.TryAppend(1, 2, huge, static (ref WireWriter w, string s) => w.WriteString(s)));
        Assert.Equal(length, frames.Length);
    }
}
