using System.Text;

namespace Presence.LoadGen.Http;

/// <summary>
/// A heartbeat request built once and patched in place per send: the device number and the metric values are
/// fixed-width digit fields, so the body length, and with it <c>Content-Length</c>, never changes.
/// <c>{"device_id":"sim-0000123","platform":"linux","metrics":{"cpu_pct":12.5,"mem_pct":40.1,"uptime_s":1234567}}</c>
/// </summary>
public sealed class HeartbeatRequests
{
    public const int IdDigits = 7;
    public const long MaxDevices = 10_000_000;

    private readonly int _idAt;
    private readonly int _cpuAt;
    private readonly int _memAt;
    private readonly int _uptimeAt;

    public HeartbeatRequests(Uri url, string idPrefix)
    {
        IdPrefix = idPrefix;
        var body = $"{{\"device_id\":\"{idPrefix}{new string('0', IdDigits)}\",\"platform\":\"linux\",\"metrics\":{{\"cpu_pct\":10.0,\"mem_pct\":10.0,\"uptime_s\":1000000}}}}";
        var head = $"POST {url.PathAndQuery} HTTP/1.1\r\nHost: {url.Authority}\r\nContent-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n";
        Template = Encoding.UTF8.GetBytes(head + body);
        BodyLength = Encoding.UTF8.GetByteCount(body);
        var bodyAt = Template.Length - BodyLength;
        _idAt = bodyAt + IndexAfter(body, $"\"device_id\":\"{idPrefix}");
        _cpuAt = bodyAt + IndexAfter(body, "\"cpu_pct\":");
        _memAt = bodyAt + IndexAfter(body, "\"mem_pct\":");
        _uptimeAt = bodyAt + IndexAfter(body, "\"uptime_s\":");
        BodyOffset = bodyAt;
    }

    public string IdPrefix { get; }

    /// <summary>The whole request (head and body) as sent on a raw connection.</summary>
    public byte[] Template { get; }

    /// <summary>Where the body starts in <see cref="Template"/>, for clients that build their own head.</summary>
    public int BodyOffset { get; }

    public int BodyLength { get; }

    public int Length => Template.Length;

    public string DeviceId(long device) => $"{IdPrefix}{device.ToString($"D{IdDigits}", System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>Writes the device number and fresh metric values into one request copy at <paramref name="request"/>.</summary>
    public void Patch(Span<byte> request, long device, ref ulong random)
    {
        WriteDigits(request.Slice(_idAt, IdDigits), device);
        WritePercent(request.Slice(_cpuAt, 4), 100 + (int)(Next(ref random) % 900));
        WritePercent(request.Slice(_memAt, 4), 100 + (int)(Next(ref random) % 900));
        WriteDigits(request.Slice(_uptimeAt, 7), 1_000_000 + (long)(Next(ref random) % 9_000_000));
    }

    /// <summary>xorshift64: cheap, lock-free per connection.</summary>
    public static ulong Next(ref ulong state)
    {
        var x = state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state = x;
        return x;
    }

    private static int IndexAfter(string text, string marker) => text.IndexOf(marker, StringComparison.Ordinal) + marker.Length;

    private static void WriteDigits(Span<byte> target, long value)
    {
        for (var i = target.Length - 1; i >= 0; i--)
        {
            target[i] = (byte)('0' + (value % 10));
            value /= 10;
        }
    }

    /// <summary>10.0 to 99.9 from 100 to 999: always two integer digits, so no JSON-invalid leading zero.</summary>
    private static void WritePercent(Span<byte> target, int tenths)
    {
        target[0] = (byte)('0' + (tenths / 100));
        target[1] = (byte)('0' + (tenths / 10 % 10));
        target[2] = (byte)'.';
        target[3] = (byte)('0' + (tenths % 10));
    }
}
