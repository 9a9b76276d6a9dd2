using System.Text;

namespace Presence.Agent.Simulation.Http;

/// <summary>
/// A heartbeat request built once and patched in place per send: the device number and the metric values are
/// fixed-width digit fields, so the body length, and with it <c>Content-Length</c>, never changes.
/// <c>{"device_id":"sim-0000123","platform":"linux","metrics":{"cpu_pct":12.5,"mem_pct":40.1,"uptime_s":1234567}}</c>
/// With device tokens the head also carries <c>Authorization: Bearer &lt;token&gt;</c>, the token of the device the
/// request is for, padded with trailing spaces to the longest token: the request keeps one length, and a server drops
/// the padding (trailing whitespace is not part of a header's value). With a shared secret every request carries
/// <c>X-Connect-Secret</c>.
/// </summary>
public sealed class HeartbeatRequests
{
    public const int IdDigits = 7;
    public const long MaxDevices = 10_000_000;

    private readonly int _idAt;
    private readonly int _cpuAt;
    private readonly int _memAt;
    private readonly int _uptimeAt;
    private readonly int _tokenAt;
    private readonly byte[][]? _tokens;

    public HeartbeatRequests(Uri url, string idPrefix, IReadOnlyList<string>? tokens = null, string? sharedSecret = null)
    {
        if (sharedSecret is not null && CheckSecret(sharedSecret) is { } unusable)
        {
            throw new ArgumentException($"shared secret {unusable}", nameof(sharedSecret));
        }

        IdPrefix = idPrefix;
        if (tokens is { Count: 0 })
        {
            throw new ArgumentException("no device token given", nameof(tokens));
        }

        _tokens = tokens?.Select(t => CheckToken(t) is { } problem
            ? throw new ArgumentException($"device token {problem}", nameof(tokens))
            : Encoding.ASCII.GetBytes(t)).ToArray();
        TokenWidth = _tokens is null ? 0 : _tokens.Max(t => t.Length);
        var authorization = _tokens is null ? "" : $"Authorization: Bearer {new string(' ', TokenWidth)}\r\n";
        var body = $"{{\"device_id\":\"{idPrefix}{new string('0', IdDigits)}\",\"platform\":\"linux\",\"metrics\":{{\"cpu_pct\":10.0,\"mem_pct\":10.0,\"uptime_s\":1000000}}}}";
        var secret = sharedSecret is null ? "" : $"X-Connect-Secret: {sharedSecret}\r\n";
        var head = $"POST {url.PathAndQuery} HTTP/1.1\r\nHost: {url.Authority}\r\n{authorization}{secret}Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n";
        Template = Encoding.UTF8.GetBytes(head + body);
        BodyLength = Encoding.UTF8.GetByteCount(body);
        var bodyAt = Template.Length - BodyLength;
        _idAt = bodyAt + IndexAfter(body, $"\"device_id\":\"{idPrefix}");
        _cpuAt = bodyAt + IndexAfter(body, "\"cpu_pct\":");
        _memAt = bodyAt + IndexAfter(body, "\"mem_pct\":");
        _uptimeAt = bodyAt + IndexAfter(body, "\"uptime_s\":");
        _tokenAt = _tokens is null ? -1 : Encoding.UTF8.GetByteCount(head[..IndexAfter(head, "Authorization: Bearer ")]);
        BodyOffset = bodyAt;
    }

    public string IdPrefix { get; }

    /// <summary>The whole request (head and body) as sent on a raw connection.</summary>
    public byte[] Template { get; }

    /// <summary>Where the body starts in <see cref="Template"/>, for clients that build their own head.</summary>
    public int BodyOffset { get; }

    public int BodyLength { get; }

    public int Length => Template.Length;

    /// <summary>Whether requests carry device tokens.</summary>
    public bool HasTokens => _tokens is not null;

    /// <summary>The width of the token field (the longest token), 0 without tokens.</summary>
    public int TokenWidth { get; }

    public string DeviceId(long device) => DeviceIdOf(IdPrefix, device);

    /// <summary>The id of device number <paramref name="device"/>: <paramref name="prefix"/> and 7 digits.</summary>
    public static string DeviceIdOf(string prefix, long device) => $"{prefix}{device.ToString($"D{IdDigits}", System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>Why <paramref name="token"/> cannot go into a header as it is, or null when it can.</summary>
    public static string? CheckToken(string token) =>
        token.Length == 0 ? "is empty"
        : token.Any(c => c is <= ' ' or > '~') ? "holds a space, a control character or a non-ASCII character"
        : null;

    /// <summary>Why <paramref name="secret"/> cannot be a header value as it is, or null when it can.</summary>
    public static string? CheckSecret(string secret) =>
        secret.Length == 0 ? "is empty"
        : secret.Any(c => c is < ' ' or > '~') ? "holds a control character or a non-ASCII character"
        : secret[0] == ' ' || secret[^1] == ' ' ? "starts or ends with a space"
        : null;

    /// <summary>Writes the device number and fresh metric values into one request copy at <paramref name="request"/>.</summary>
    public void Patch(Span<byte> request, long device, ref ulong random)
    {
        WriteDigits(request.Slice(_idAt, IdDigits), device);
        WritePercent(request.Slice(_cpuAt, 4), 100 + (int)(Next(ref random) % 900));
        WritePercent(request.Slice(_memAt, 4), 100 + (int)(Next(ref random) % 900));
        WriteDigits(request.Slice(_uptimeAt, 7), 1_000_000 + (long)(Next(ref random) % 9_000_000));
        if (_tokens is not null)
        {
            var field = request.Slice(_tokenAt, TokenWidth);
            var token = _tokens[device];
            token.CopyTo(field);
            field[token.Length..].Fill((byte)' ');
        }
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
