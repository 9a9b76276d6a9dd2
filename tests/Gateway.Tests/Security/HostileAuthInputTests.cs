using System.Buffers.Text;
using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Presence.Gateway.Tests.Security;

/// <summary>
/// A corpus of hostile inputs against the security surface in device-token mode: provisioning bodies, query and path
/// arguments, the token endpoint, API-key management, credentials in headers and query strings, and device-channel
/// frames. Each gets its expected 4xx in the one error shape (never a 5xx), applies nothing, and leaves the service
/// answering <c>/healthz</c> and a valid authenticated heartbeat.
/// </summary>
/// <remarks>
/// Brute-force limits: many of these cases are deliberate 401s from one source address, which the default limit
/// (10 a minute) would turn into 429s after the tenth. This class's server sets <c>Presence:Auth:FailuresPerMinute</c>
/// to 100000 (the highest value the configuration accepts) so that every case gets the status it is about; the
/// limiter itself is tested elsewhere. Time never moves here, so tokens never expire mid-run; the per-device heartbeat
/// limit is raised too because the canary heartbeats after every case.
/// </remarks>
public sealed class HostileAuthInputTests(HostileAuthInputTests.Server server) : IClassFixture<HostileAuthInputTests.Server>
{
    /// <summary>Never provisioned: no hostile request may create it.</summary>
    public const string Victim = "hv";

    /// <summary>Provisioned: no hostile request may change it.</summary>
    public const string Existing = "hv-existing";

    /// <summary>Provisioned, the target of hostile <c>rotate_secret</c> values: its token must keep working.</summary>
    public const string Rotated = "hv-rot";

    /// <summary>Heartbeats after every case to show the service still works.</summary>
    public const string Canary = "canary";

    private const string CanaryBody = "{\"device_id\":\"canary\"}";

    private static readonly Dictionary<string, BodyCase> ProvisionBodies = BuildProvisionBodies();
    private static readonly Dictionary<string, HttpCase> Requests = BuildRequests();
    private static readonly Dictionary<string, FrameCase> Frames = BuildFrames();
    private static readonly Dictionary<string, string> Upgrades = BuildUpgrades();

    public static TheoryData<string> ProvisionBodyCases => [.. ProvisionBodies.Keys];

    public static TheoryData<string> RequestCases => [.. Requests.Keys];

    public static TheoryData<string> FrameCases => [.. Frames.Keys];

    public static TheoryData<string> UpgradeCases => [.. Upgrades.Keys];

    [Fact]
    public void Corpus_has_at_least_120_hostile_inputs()
    {
        var total = ProvisionBodies.Count + Requests.Count + Frames.Count + Upgrades.Count + HostileConnectSecretTests.CaseCount;
        Assert.True(total >= 120, $"only {total} hostile inputs");
    }

    [Theory]
    [MemberData(nameof(ProvisionBodyCases))]
    public async Task Hostile_provisioning_body_is_refused_and_neither_creates_nor_changes_a_device(string @case)
    {
        var c = ProvisionBodies[@case];
        var setup = await server.ReadyAsync();
        foreach (var deviceId in new[] { Victim, Existing })
        {
            var before = await server.FingerprintAsync();
            using var request = new HttpRequestMessage(HttpMethod.Put, $"/api/v1/devices/{deviceId}") { Content = c.Content() };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", setup.Operator);
            using var response = await server.Raw.SendAsync(request);

            await AssertRefusedAsync(response, c.Status, c.Code, $"{@case} ({deviceId})");
            Assert.Equal(before, await server.FingerprintAsync());
        }

        await server.AssertStillServesAsync();
    }

    [Theory]
    [MemberData(nameof(RequestCases))]
    public async Task Hostile_request_gets_its_4xx_in_the_one_shape_and_applies_nothing(string @case)
    {
        var c = Requests[@case];
        await server.ReadyAsync();
        var before = await server.FingerprintAsync();

        using var request = new HttpRequestMessage(new HttpMethod(c.Method), server.Resolve(c.Path));
        if (c.Authorization is { } authorization)
        {
            request.Headers.TryAddWithoutValidation("Authorization", server.Resolve(authorization));
        }

        foreach (var (name, value) in c.Headers)
        {
            request.Headers.TryAddWithoutValidation(name, server.Resolve(value));
        }

        if (c.Body is { } body)
        {
            request.Content = body.Content(server.Resolve);
        }

        using var response = await server.Raw.SendAsync(request);

        await AssertRefusedAsync(response, c.Status, c.Code, @case);
        Assert.Equal(before, await server.FingerprintAsync());
        await server.AssertStillServesAsync();
    }

    [Theory]
    [MemberData(nameof(UpgradeCases))]
    public async Task WebSocket_upgrade_with_a_hostile_access_token_is_refused_with_401_before_upgrading(string @case)
    {
        await server.ReadyAsync();
        var before = await server.FingerprintAsync();
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        var uri = new Uri(new UriBuilder(server.BaseAddress) { Scheme = "ws" }.Uri, server.Resolve(Upgrades[@case]));

        await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(uri, TestSocket.Timeout()));

        Assert.Equal(HttpStatusCode.Unauthorized, socket.HttpStatusCode);
        Assert.Equal(before, await server.FingerprintAsync());
        await server.AssertStillServesAsync();
    }

    [Theory]
    [MemberData(nameof(FrameCases))]
    public async Task Hostile_device_channel_frame_gets_an_error_frame_or_its_close_code_and_applies_nothing(string @case)
    {
        var c = Frames[@case];
        var setup = await server.ReadyAsync();
        await using var channel = await server.ConnectAsync($"/ws/device?access_token={setup.CanaryToken}");
        var before = await server.FingerprintAsync();

        if (c.Fragments > 1)
        {
            var size = c.Payload.Length / c.Fragments;
            for (var i = 0; i < c.Fragments; i++)
            {
                var last = i == c.Fragments - 1;
                await channel.Socket.SendAsync(c.Payload.AsMemory(i * size, last ? c.Payload.Length - (i * size) : size), c.Type, last, TestSocket.Timeout());
            }
        }
        else
        {
            await channel.Socket.SendAsync(c.Payload, c.Type, true, TestSocket.Timeout());
        }

        if (c.Close == WebSocketCloseStatus.InvalidPayloadData)
        {
            // The WebSocket stack fails the connection (RFC 6455 8.1): its 1007 close frame may or may not arrive before
            // the connection is torn down, so either is the expected outcome; no reply of any other kind is.
            try
            {
                var failed = await channel.ReceiveAsync();
                Assert.True(failed is null, $"{@case}: expected the connection to fail, got {failed}");
                Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, channel.CloseStatus);
            }
            catch (WebSocketException)
            {
                Assert.NotEqual(WebSocketState.Open, channel.Socket.State);
            }

            // The server may already have reset the connection: do not answer its close, just drop ours.
            channel.Socket.Abort();

            Assert.Equal(before, await server.FingerprintAsync());
            await using var again = await server.ConnectAsync($"/ws/device?access_token={setup.CanaryToken}");
            await again.SendTextAsync(CanaryBody.Replace("{", "{\"type\":\"heartbeat\",", StringComparison.Ordinal));
            await again.ExpectAsync("ack");
            await server.AssertStillServesAsync();
            return;
        }

        var reply = await channel.ReceiveAsync();
        if (c.Close is { } close)
        {
            Assert.True(reply is null, $"{@case}: expected close {(int)close}, got {reply}");
            Assert.Equal(close, channel.CloseStatus);
        }
        else
        {
            Assert.True(reply.HasValue, $"{@case}: expected an error frame, the socket closed ({channel.CloseStatus})");
            var frame = reply.Value;
            Assert.Equal("error", frame.GetProperty("type").GetString());
            var error = frame.GetProperty("error");
            Assert.All(error.EnumerateObject(), p => Assert.Contains(p.Name, new[] { "code", "message", "details" }));
            Assert.Equal(c.Code, error.GetProperty("code").GetString());
            Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        }

        Assert.Equal(before, await server.FingerprintAsync());

        // The channel (or, after a close, a new one) still serves the canary.
        if (c.Close is not null)
        {
            await using var fresh = await server.ConnectAsync($"/ws/device?access_token={setup.CanaryToken}");
            await fresh.SendTextAsync(CanaryBody.Replace("{", "{\"type\":\"heartbeat\",", StringComparison.Ordinal));
            await fresh.ExpectAsync("ack");
        }
        else
        {
            await channel.SendTextAsync(CanaryBody.Replace("{", "{\"type\":\"heartbeat\",", StringComparison.Ordinal));
            await channel.ExpectAsync("ack");
        }

        await server.AssertStillServesAsync();
    }

    internal static async Task AssertRefusedAsync(HttpResponseMessage response, int status, string code, string @case)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == status, $"{@case}: expected {status} {code}, got {(int)response.StatusCode}: {text}");
        var error = ErrorShape.AssertShape(response, text);
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.Equal("nosniff", response.Headers.TryGetValues("X-Content-Type-Options", out var nosniff) ? nosniff.Single() : null);
        if (status == 401)
        {
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        }
    }

    /// <summary>A readable case name for a value that may be long.</summary>
    private static string Label(string value) => value.Length <= 40 ? value : $"{value[..8]}... ({value.Length} characters)";

    private static string Nest(int depth) => string.Concat(Enumerable.Repeat("{\"a\":", depth - 1)) + "{}" + new string('}', depth - 1);

    private static byte[] U(string text) => Encoding.UTF8.GetBytes(text);

    private static byte[] Cat(params byte[][] parts) => [.. parts.SelectMany(p => p)];

    private static Dictionary<string, BodyCase> BuildProvisionBodies()
    {
        var cases = new Dictionary<string, BodyCase>();
        void Add(string name, string json, int status = 422, string code = "INVALID_BODY") => cases.Add(name, new BodyCase(U(json), status, code));
        void AddBytes(string name, byte[] body) => cases.Add(name, new BodyCase(body, 422, "INVALID_BODY"));

        // Wrong JSON types.
        foreach (var (label, value) in new[] { ("number", "1"), ("float", "1.5"), ("true", "true"), ("false", "false"), ("object", "{}"), ("array", "[]"), ("string array", "[\"x\"]") })
        {
            Add($"device_name {label}", $"{{\"device_name\":{value}}}");
        }

        foreach (var (label, value) in new[] { ("string", "\"60\""), ("true", "true"), ("object", "{}"), ("array", "[60]"), ("NaN string", "\"NaN\""), ("Infinity string", "\"Infinity\"") })
        {
            Add($"timeout_s {label}", $"{{\"timeout_s\":{value}}}");
        }

        foreach (var (label, value) in new[] { ("string", "\"a=b\""), ("number", "1"), ("true", "true"), ("array", "[]"), ("array of pairs", "[[\"a\",\"b\"]]"), ("json in a string", "\"{}\"") })
        {
            Add($"labels {label}", $"{{\"labels\":{value}}}");
        }

        foreach (var (label, value) in new[] { ("number", "1"), ("float", "1.5"), ("true", "true"), ("null", "null"), ("object", "{}"), ("array", "[\"x\"]") })
        {
            Add($"label value {label}", $"{{\"labels\":{{\"team\":{value}}}}}");
        }

        // Numbers JSON does not have, or out of range.
        foreach (var (label, value) in new[]
        {
            ("NaN literal", "NaN"), ("Infinity literal", "Infinity"), ("negative Infinity literal", "-Infinity"), ("1e400", "1e400"), ("-1e400", "-1e400"),
            ("hex", "0x10"), ("leading zero", "060"), ("leading plus", "+60"), ("leading dot", ".5"), ("bare exponent", "1e"),
            ("1e308", "1e308"), ("30 digits", "123456789012345678901234567890"), ("one week and a second", "604801"), ("just over a week", "604800.001"),
            ("zero", "0"), ("negative zero", "-0"), ("negative", "-1"), ("half a second", "0.5"), ("just under one", "0.999"), ("long.MinValue", "-9223372036854775808"),
        })
        {
            Add($"timeout_s {label}", $"{{\"timeout_s\":{value}}}");
        }

        // Labels: too many, bad keys, bad values.
        Add("33 labels", $"{{\"labels\":{{{string.Join(',', Enumerable.Range(0, 33).Select(i => $"\"k{i}\":\"v\""))}}}}}");
        Add("1000 labels", $"{{\"labels\":{{{string.Join(',', Enumerable.Range(0, 1000).Select(i => $"\"k{i}\":\"v\""))}}}}}");
        foreach (var (label, key) in new[]
        {
            ("empty", ""), ("uppercase", "Team"), ("space", "a b"), ("colon", "a:b"), ("non-ascii", "\u00e9quipe"), ("65 characters", new string('k', 65)),
            ("escaped NUL", "a\\u0000"), ("lone surrogate", "\\ud800"), ("quote", "a\\\"b"), ("backslash", "a\\\\b"), ("newline", "a\\nb"),
        })
        {
            Add($"label key {label}", $"{{\"labels\":{{\"{key}\":\"v\"}}}}");
        }

        Add("label key twice", "{\"labels\":{\"team\":\"a\",\"team\":\"b\"}}");
        Add("label value 257 characters", $"{{\"labels\":{{\"team\":\"{new string('v', 257)}\"}}}}");
        Add("label value 60000 characters", $"{{\"labels\":{{\"team\":\"{new string('v', 60_000)}\"}}}}");
        Add("label value bell", "{\"labels\":{\"team\":\"a\\u0007b\"}}");
        Add("label value newline", "{\"labels\":{\"team\":\"a\\nb\"}}");
        Add("label value DEL", "{\"labels\":{\"team\":\"a\\u007fb\"}}");
        Add("label value lone low surrogate", "{\"labels\":{\"team\":\"\\udfff\"}}");

        // Names: empty, long, control characters, lone surrogates.
        Add("device_name empty", "{\"device_name\":\"\"}");
        Add("device_name blank", "{\"device_name\":\"   \"}");
        Add("device_name 129 characters", $"{{\"device_name\":\"{new string('n', 129)}\"}}");
        Add("device_name 50000 characters", $"{{\"device_name\":\"{new string('n', 50_000)}\"}}");
        Add("device_name escaped NUL", "{\"device_name\":\"a\\u0000b\"}");
        Add("device_name escape sequence", "{\"device_name\":\"\\u001b[31mred\"}");
        Add("device_name escaped newline", "{\"device_name\":\"a\\nb\"}");
        Add("device_name C1 control", "{\"device_name\":\"a\\u0085b\"}");
        Add("device_name raw control byte", "{\"device_name\":\"a\u0001b\"}");
        Add("device_name lone high surrogate", "{\"device_name\":\"\\ud800\"}");
        Add("device_name lone low surrogate", "{\"device_name\":\"\\udc00\"}");
        Add("device_name surrogate inside text", "{\"device_name\":\"a\\ud800b\"}");
        Add("device_name reversed surrogate pair", "{\"device_name\":\"\\ude80\\ud83d\"}");

        // Bytes that are not UTF-8.
        AddBytes("device_name invalid byte FF", Cat(U("{\"device_name\":\"a"), [0xFF], U("\"}")));
        AddBytes("device_name overlong slash", Cat(U("{\"device_name\":\"a"), [0xC0, 0xAF], U("\"}")));
        AddBytes("device_name truncated sequence", Cat(U("{\"device_name\":\"a"), [0xE2, 0x82], U("\"}")));
        AddBytes("device_name encoded surrogate", Cat(U("{\"device_name\":\"a"), [0xED, 0xA0, 0x80], U("\"}")));
        AddBytes("label key invalid byte", Cat(U("{\"labels\":{\"t"), [0xFE], U("\":\"v\"}}")));
        AddBytes("unknown field invalid byte", Cat(U("{\"note\":\"x"), [0xFF, 0xFE], U("\"}")));
        AddBytes("UTF-16 body", Encoding.Unicode.GetBytes("{\"device_name\":\"a\"}"));

        // Depth.
        Add("unknown field 1000 objects deep", $"{{\"deep\":{Nest(1000)}}}");
        Add("unknown field 1000 arrays deep", $"{{\"deep\":{new string('[', 1000)}{new string(']', 1000)}}}");
        Add("labels 1000 deep", $"{{\"labels\":{Nest(1000)}}}");
        Add("unclosed 1000 arrays", $"{{\"deep\":{new string('[', 1000)}");

        // Not one JSON object.
        Add("whitespace only", "  \r\n ");
        Add("top-level null", "null");
        Add("top-level number", "60");
        Add("top-level string", "\"hv\"");
        Add("top-level array", "[{\"device_name\":\"a\"}]");
        Add("not json", "{device_name:a}");
        Add("truncated", "{\"device_name\":\"a\"");
        Add("trailing garbage", "{\"device_name\":\"a\"} x");
        Add("two objects", "{}{}");
        Add("trailing bracket", "{}]");
        Add("line comment", "{} // c");
        AddBytes("trailing NUL byte", Cat(U("{}"), [0]));

        // Duplicate fields: a validator reading one copy and the service using another must not disagree.
        Add("device_name twice, the first of the wrong type", "{\"device_name\":5,\"device_name\":\"ok\"}");
        Add("timeout_s twice, the first out of range", "{\"timeout_s\":0,\"timeout_s\":60}");
        Add("labels twice, the first invalid", "{\"labels\":{\"BAD KEY\":\"x\"},\"labels\":{}}");

        // Size and media type.
        var big = U($"{{\"device_name\":\"n\",\"pad\":\"{new string('p', 70 * 1024)}\"}}");
        cases.Add("70 KiB body", new BodyCase(big, 413, "PAYLOAD_TOO_LARGE"));
        cases.Add("70 KiB body chunked", new BodyCase(big, 413, "PAYLOAD_TOO_LARGE", Chunked: true));
        cases.Add("70 KiB of whitespace", new BodyCase(U(new string(' ', 70 * 1024) + "{}"), 413, "PAYLOAD_TOO_LARGE"));
        cases.Add("900 KiB body chunked", new BodyCase(U($"{{\"pad\":\"{new string('p', 900 * 1024)}\"}}"), 413, "PAYLOAD_TOO_LARGE", Chunked: true));
        foreach (var type in new[] { "text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", "text/json" })
        {
            cases.Add($"content type {type}", new BodyCase(U("{\"device_name\":\"a\"}"), 415, "UNSUPPORTED_MEDIA_TYPE", ContentType: type));
        }

        cases.Add("no content type", new BodyCase(U("{\"device_name\":\"a\"}"), 415, "UNSUPPORTED_MEDIA_TYPE", ContentType: null));
        // A chunked body without a Content-Type is still a body: it must not be ignored as if the request had none.
        cases.Add("no content type, chunked, invalid body", new BodyCase(U("{\"device_name\":5}"), 415, "UNSUPPORTED_MEDIA_TYPE", ContentType: null, Chunked: true));
        return cases;
    }

    private static Dictionary<string, HttpCase> BuildRequests()
    {
        var cases = new Dictionary<string, HttpCase>();
        const string Op = "Bearer {op}";
        const string Admin = "Bearer {admin}";
        const string Boot = "Bearer {boot}";
        var tenKb = new string('a', 10 * 1024);

        // ?rotate_secret= values that are not 'true' or 'false' (the device's secret must not change).
        foreach (var value in new[] { "yes", "1", "0", "TRUE", "True", "on", "tru", "true%00", "%20true", "true%20", "true,true", new string('t', 1000), "true&rotate_secret=true", "true&rotate_secret=false", "false&rotate_secret=true" })
        {
            cases.Add($"rotate_secret={Label(value)}", new HttpCase("PUT", $"/api/v1/devices/{Rotated}?rotate_secret={value}", 400, "INVALID_QUERY") { Authorization = Op });
        }

        // Path ids.
        foreach (var segment in new[]
        {
            new string('d', 129), new string('d', 1000), "a%20b", "a%2Fb", "a%2fb", "%2F", "a%252Fb", "%2E%2E%2Fapi-keys", "a%3Bb", "%C3%A9", "%FF",
            "a%7Fb", "a%0Ab", "a+b", "%E2%80%AE", "a%5Cb", "%3Cscript%3E", "a%22b", "hv%3Frotate_secret=true", "hv%23x",
        })
        {
            cases.Add($"PUT device path {Label(segment)}", new HttpCase("PUT", $"/api/v1/devices/{segment}", 400, "INVALID_QUERY") { Authorization = Op, Body = new BodyCase(U("{}"), 0, "") });
        }

        // POST /api/v1/devices/auth bodies (no credentials needed).
        void Auth(string name, string json, int status = 422, string code = "INVALID_BODY") =>
            cases.Add($"auth {name}", new HttpCase("POST", "/api/v1/devices/auth", status, code) { Body = new BodyCase(U(json), 0, "") });
        Auth("empty object", "{}");
        Auth("secret missing", "{\"device_id\":\"canary\"}");
        Auth("device_id missing", "{\"secret\":\"{secret}\"}");
        Auth("device_id null", "{\"device_id\":null,\"secret\":\"{secret}\"}");
        Auth("secret null", "{\"device_id\":\"canary\",\"secret\":null}");
        Auth("device_id number", "{\"device_id\":42,\"secret\":\"{secret}\"}");
        Auth("device_id array", "{\"device_id\":[\"canary\"],\"secret\":\"{secret}\"}");
        Auth("device_id object", "{\"device_id\":{\"id\":\"canary\"},\"secret\":\"{secret}\"}");
        Auth("secret number", "{\"device_id\":\"canary\",\"secret\":12345}");
        Auth("secret true", "{\"device_id\":\"canary\",\"secret\":true}");
        Auth("secret array", "{\"device_id\":\"canary\",\"secret\":[\"{secret}\"]}");
        Auth("secret object", "{\"device_id\":\"canary\",\"secret\":{\"value\":\"{secret}\"}}");
        Auth("secret empty", "{\"device_id\":\"canary\",\"secret\":\"\"}");
        Auth("secret 257 characters", $"{{\"device_id\":\"canary\",\"secret\":\"acme.{new string('s', 252)}\"}}");
        Auth("secret 10 KB", $"{{\"device_id\":\"canary\",\"secret\":\"acme.{tenKb}\"}}");
        Auth("secret lone surrogate", "{\"device_id\":\"canary\",\"secret\":\"acme.\\ud800\"}");
        Auth("device_id empty", "{\"device_id\":\"\",\"secret\":\"{secret}\"}");
        Auth("device_id space", "{\"device_id\":\"can ary\",\"secret\":\"{secret}\"}");
        Auth("device_id slash", "{\"device_id\":\"acme/canary\",\"secret\":\"{secret}\"}");
        Auth("device_id 129 characters", $"{{\"device_id\":\"{new string('d', 129)}\",\"secret\":\"{{secret}}\"}}");
        Auth("device_id escaped NUL", "{\"device_id\":\"canary\\u0000\",\"secret\":\"{secret}\"}");
        Auth("top-level array", "[{\"device_id\":\"canary\",\"secret\":\"{secret}\"}]");
        Auth("top-level number", "42");
        Auth("top-level string", "\"{secret}\"");
        Auth("not json", "device_id=canary&secret={secret}");
        Auth("trailing garbage", "{\"device_id\":\"canary\",\"secret\":\"{secret}\"} x");
        Auth("1000 deep", $"{{\"device_id\":\"canary\",\"secret\":\"{{secret}}\",\"x\":{Nest(1000)}}}");
        // Duplicate fields, as for provisioning bodies: the heartbeat refuses them, so must every body.
        Auth("device_id twice, the valid one second", "{\"device_id\":\"no such device\",\"device_id\":\"canary\",\"secret\":\"{secret}\"}");
        Auth("secret with NUL", "{\"device_id\":\"canary\",\"secret\":\"acme.\\u0000{secret}\"}", 401, "UNAUTHORIZED");
        Auth("secret with its tenant changed", "{\"device_id\":\"canary\",\"secret\":\"globex.{secret-random}\"}", 401, "UNAUTHORIZED");
        Auth("secret without its tenant", "{\"device_id\":\"canary\",\"secret\":\"{secret-random}\"}", 401, "UNAUTHORIZED");
        Auth("secret with a dot tenant", "{\"device_id\":\"canary\",\"secret\":\".{secret-random}\"}", 401, "UNAUTHORIZED");
        Auth("secret with an invalid tenant", "{\"device_id\":\"canary\",\"secret\":\"ACME.{secret-random}\"}", 401, "UNAUTHORIZED");
        Auth("secret of another device", "{\"device_id\":\"hv-existing\",\"secret\":\"{secret}\"}", 401, "UNAUTHORIZED");
        Auth("secret for a device never provisioned", "{\"device_id\":\"hv\",\"secret\":\"{secret}\"}", 401, "UNAUTHORIZED");
        Auth("secret with one character changed", "{\"device_id\":\"canary\",\"secret\":\"{secret-flipped}\"}", 401, "UNAUTHORIZED");
        Auth("the operator key as secret", "{\"device_id\":\"canary\",\"secret\":\"{op}\"}", 401, "UNAUTHORIZED");
        Auth("the token as secret", "{\"device_id\":\"canary\",\"secret\":\"{token}\"}", 401, "UNAUTHORIZED");
        cases.Add("auth text/plain", new HttpCase("POST", "/api/v1/devices/auth", 415, "UNSUPPORTED_MEDIA_TYPE") { Body = new BodyCase(U("{\"device_id\":\"canary\",\"secret\":\"{secret}\"}"), 0, "", ContentType: "text/plain") });
        cases.Add("auth 70 KiB", new HttpCase("POST", "/api/v1/devices/auth", 413, "PAYLOAD_TOO_LARGE") { Body = new BodyCase(U($"{{\"device_id\":\"canary\",\"secret\":\"{{secret}}\",\"pad\":\"{new string('p', 70 * 1024)}\"}}"), 0, "") });
        cases.Add("auth invalid UTF-8", new HttpCase("POST", "/api/v1/devices/auth", 422, "INVALID_BODY") { Body = new BodyCase(Cat(U("{\"device_id\":\"canary\",\"secret\":\"acme."), [0xFF, 0xC0], U("\"}")), 0, "") });

        // POST /api/v1/tenants/{tenant}/api-keys: bad tenant ids (the bootstrap admin may manage any valid one).
        var keyBody = new BodyCase(U("{\"role\":\"viewer\",\"name\":\"x\"}"), 0, "");
        foreach (var tenant in new[] { "ACME", "Acme", new string('t', 65), "%C3%A9", "a.b", "a%20b", "a%2Fb", "a:b", "%E2%80%AE", "a%2Fapi-keys", "-%0A-" })
        {
            cases.Add($"create key tenant {Label(tenant)}", new HttpCase("POST", $"/api/v1/tenants/{tenant}/api-keys", 400, "INVALID_QUERY") { Authorization = Boot, Body = keyBody });
        }

        void Key(string name, string json, int status = 422, string code = "INVALID_BODY", string? contentType = "application/json") =>
            cases.Add($"create key {name}", new HttpCase("POST", "/api/v1/tenants/acme/api-keys", status, code) { Authorization = Admin, Body = new BodyCase(U(json), 0, "", ContentType: contentType) });
        Key("role root", "{\"role\":\"root\",\"name\":\"x\"}");
        Key("role Admin", "{\"role\":\"Admin\",\"name\":\"x\"}");
        Key("role with a space", "{\"role\":\"admin \",\"name\":\"x\"}");
        Key("role empty", "{\"role\":\"\",\"name\":\"x\"}");
        Key("role number", "{\"role\":3,\"name\":\"x\"}");
        Key("role array", "{\"role\":[\"admin\"],\"name\":\"x\"}");
        Key("role null", "{\"role\":null,\"name\":\"x\"}");
        Key("role missing", "{\"name\":\"x\"}");
        Key("role 10 KB", $"{{\"role\":\"{tenKb}\",\"name\":\"x\"}}");
        Key("name missing", "{\"role\":\"viewer\"}");
        Key("name empty", "{\"role\":\"viewer\",\"name\":\"\"}");
        Key("name NUL", "{\"role\":\"viewer\",\"name\":\"a\\u0000b\"}");
        Key("name escape sequence", "{\"role\":\"viewer\",\"name\":\"\\u001b[2J\"}");
        Key("name newline", "{\"role\":\"viewer\",\"name\":\"a\\r\\nb\"}");
        Key("name 129 characters", $"{{\"role\":\"viewer\",\"name\":\"{new string('n', 129)}\"}}");
        Key("name lone surrogate", "{\"role\":\"viewer\",\"name\":\"\\ud800\"}");
        Key("name number", "{\"role\":\"viewer\",\"name\":5}");
        Key("name object", "{\"role\":\"viewer\",\"name\":{}}");
        Key("top-level array", "[{\"role\":\"viewer\",\"name\":\"x\"}]");
        Key("not json", "role=admin&name=x");
        Key("trailing garbage", "{\"role\":\"viewer\",\"name\":\"x\"}}");
        Key("1000 deep", $"{{\"role\":\"viewer\",\"name\":\"x\",\"x\":{Nest(1000)}}}");
        Key("role twice, the valid one second", "{\"role\":\"root\",\"role\":\"viewer\",\"name\":\"x\"}");
        Key("text/plain", "{\"role\":\"viewer\",\"name\":\"x\"}", 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain");
        Key("70 KiB", $"{{\"role\":\"viewer\",\"name\":\"x\",\"pad\":\"{new string('p', 70 * 1024)}\"}}", 413, "PAYLOAD_TOO_LARGE");
        cases.Add("create key name invalid UTF-8", new HttpCase("POST", "/api/v1/tenants/acme/api-keys", 422, "INVALID_BODY") { Authorization = Admin, Body = new BodyCase(Cat(U("{\"role\":\"viewer\",\"name\":\"a"), [0xFF], U("\"}")), 0, "") });

        // DELETE /api/v1/api-keys/{id}: bad ids, and ids that look right but are nobody's.
        foreach (var id in new[] { "ABCDEF0123456789", "0123456789abcde", "0123456789abcdef0", "g123456789abcdef", "0123456789abcde%20", "pk.0123456789abcdef", "{op}", new string('a', 200), "-1", "0123456789abcde%C3%A9", "Bootstrap" })
        {
            cases.Add($"revoke key {Label(id)}", new HttpCase("DELETE", $"/api/v1/api-keys/{id}", 400, "INVALID_QUERY") { Authorization = Admin });
        }

        cases.Add("revoke key nobody has", new HttpCase("DELETE", "/api/v1/api-keys/0123456789abcdef", 404, "NOT_FOUND") { Authorization = Admin });

        // Credentials in headers, on a portal endpoint.
        void Portal(string name, string? authorization, params (string, string)[] headers) =>
            cases.Add($"portal {name}", new HttpCase("GET", "/api/v1/devices", 401, "UNAUTHORIZED") { Authorization = authorization, Headers = headers });
        Portal("no credentials", null);
        Portal("Bearer alone", "Bearer");
        Portal("Bearer and a space", "Bearer ");
        Portal("Bearer and spaces", "Bearer      ");
        Portal("Bearer and 10 KB", "Bearer " + tenKb);
        Portal("Bearer without a space", "Bearer{op}");
        Portal("Basic with user and password", "Basic " + Convert.ToBase64String(U("admin:admin")));
        Portal("Basic with the key", "Basic {op}");
        Portal("Digest", "Digest username=\"admin\"");
        Portal("key without a scheme", "{op}");
        Portal("key and garbage", "Bearer {op} x");
        Portal("key twice", "Bearer {op},Bearer {op}");
        Portal("key with one character more", "Bearer {op}x");
        Portal("key with one character less", "Bearer {op-short}");
        Portal("key with its secret wrong", "Bearer {op-wrong-secret}");
        Portal("key id alone", "Bearer pk.{op-id}.");
        Portal("key prefix alone", "Bearer pk.");
        Portal("key upper-cased", "Bearer {op-upper}");
        Portal("non-ascii", "Bearer \u0442\u0435\u0441\u0442");
        Portal("device token", "Bearer {token}");
        Portal("connect secret", "Bearer " + SecureServer.ConnectSecret);
        Portal("signing key", "Bearer " + SecureServer.SigningKey);
        Portal("bearer garbage beats a valid X-Api-Key", "Bearer garbage", ("X-Api-Key", "{op}"));
        Portal("X-Api-Key empty", null, ("X-Api-Key", ""));
        Portal("X-Api-Key garbage", null, ("X-Api-Key", "garbage"));
        Portal("X-Api-Key 10 KB", null, ("X-Api-Key", tenKb));
        Portal("X-Api-Key with a scheme", null, ("X-Api-Key", "Bearer {op}"));
        Portal("X-Api-Key twice", null, ("X-Api-Key", "{op}"), ("X-Api-Key", "{op}"));
        Portal("X-Api-Key non-ascii", null, ("X-Api-Key", "\u043a\u043b\u044e\u0447"));
        Portal("X-Api-Key device token", null, ("X-Api-Key", "{token}"));
        Portal("X-Api-Key wrong secret", null, ("X-Api-Key", "{op-wrong-secret}"));
        Portal("X-Connect-Secret", null, ("X-Connect-Secret", SecureServer.ConnectSecret));
        cases.Add("portal access_token on a plain endpoint", new HttpCase("GET", "/api/v1/devices?access_token={op}", 401, "UNAUTHORIZED"));
        cases.Add("portal device token on an operator endpoint", new HttpCase("PUT", $"/api/v1/devices/{Victim}", 401, "UNAUTHORIZED") { Authorization = "Bearer {token}", Body = new BodyCase(U("{}"), 0, "") });
        cases.Add("portal device token on key management", new HttpCase("POST", "/api/v1/tenants/acme/api-keys", 401, "UNAUTHORIZED") { Authorization = "Bearer {token}", Body = keyBody });

        // Credentials in headers, on the device endpoint (the heartbeat would be valid with the right token).
        void Device(string name, string? authorization, string body = CanaryBody, string path = "/api/v1/heartbeat", params (string, string)[] headers) =>
            cases.Add($"device {name}", new HttpCase("POST", path, 401, "UNAUTHORIZED") { Authorization = authorization, Headers = headers, Body = new BodyCase(U(body), 0, "") });
        Device("no credentials", null);
        Device("Bearer alone", "Bearer");
        Device("Bearer and 10 KB", "Bearer " + tenKb);
        Device("Bearer and a 1025 character token", "Bearer {token}" + new string('A', 1025));
        Device("Basic with the token", "Basic {token}");
        Device("token without a scheme", "{token}");
        Device("token with a wrong MAC", "Bearer {token-bad-mac}");
        Device("token with a tampered payload", "Bearer {token-tampered}", "{\"device_id\":\"hv-existing\"}");
        Device("token with a tampered stamp", "Bearer {token-tampered-stamp}");
        Device("token with a later expiry", "Bearer {token-tampered-expiry}");
        Device("token signed with another key", "Bearer {token-other-key}");
        Device("token of another device signed with another key", "Bearer {token-other-key-existing}", "{\"device_id\":\"hv-existing\"}");
        Device("token version 2", "Bearer {token-v2}");
        Device("token upper-case prefix", "Bearer {token-upper-prefix}");
        Device("token with a trailing dot", "Bearer {token}.");
        Device("token without its MAC", "Bearer {token-no-mac}");
        Device("token with an empty MAC", "Bearer {token-no-mac}.");
        // A token is accepted only in the exact form it was issued (no padding, no unused bits): no second spelling.
        Device("token with a padded MAC", "Bearer {token}=");
        Device("token with the MAC's unused low bits set", "Bearer {token-mac-low-bits}");
        Device("token with a long MAC", "Bearer {token}" + new string('A', 60));
        Device("token MAC not base64", "Bearer {token-no-mac}.!!!!");
        Device("token twice", "Bearer {token},{token}");
        Device("token and garbage", "Bearer {token} x");
        Device("v1. alone", "Bearer v1.");
        Device("v1.. alone", "Bearer v1..");
        Device("v1. garbage", "Bearer v1.garbage.garbage");
        Device("v1. non-base64", "Bearer v1.%%%.$$$");
        Device("non-ascii", "Bearer \u0442\u043e\u043a\u0435\u043d");
        Device("API key", "Bearer {op}");
        Device("bootstrap admin key", Boot);
        Device("signing key", "Bearer " + SecureServer.SigningKey);
        Device("device secret", "Bearer {secret}");
        Device("token in X-Api-Key", null, headers: ("X-Api-Key", "{token}"));
        Device("connect secret in X-Connect-Secret", null, headers: ("X-Connect-Secret", SecureServer.ConnectSecret));
        Device("token in the query", null, path: "/api/v1/heartbeat?access_token={token}");
        Device("alias with a wrong MAC", "Bearer {token-bad-mac}", path: "/api/connect");
        Device("alias with another key's token", "Bearer {token-other-key}", path: "/api/connect");

        // ?access_token= on the WebSockets, without an upgrade: the credential is checked first.
        foreach (var (path, label) in new[] { ("/ws/device", "device"), ("/ws/events", "events") })
        {
            foreach (var (name, token) in new[]
            {
                ("empty", ""), ("garbage", "garbage"), ("6 KB", new string('a', 6 * 1024)), ("NUL", "%00"), ("v1.", "v1."), ("bad MAC", "{token-bad-mac}"),
                ("other key", "{token-other-key}"), ("scheme inside", "Bearer%20{op}"), ("twice", "{viewer}&access_token={viewer}"),
            })
            {
                cases.Add($"{label} channel access_token {name}", new HttpCase("GET", $"{path}?access_token={token}", 401, "UNAUTHORIZED"));
            }
        }

        cases.Add("device channel access_token API key", new HttpCase("GET", "/ws/device?access_token={op}", 401, "UNAUTHORIZED"));
        cases.Add("device channel access_token secret", new HttpCase("GET", "/ws/device?access_token={secret}", 401, "UNAUTHORIZED"));
        cases.Add("events channel access_token device token", new HttpCase("GET", "/ws/events?access_token={token}", 401, "UNAUTHORIZED"));
        cases.Add("events channel access_token key with a wrong secret", new HttpCase("GET", "/ws/events?access_token={op-wrong-secret}", 401, "UNAUTHORIZED"));

        // Tokens that carry a valid MAC (made with the configured signing key, as only someone holding it could) but a
        // payload the gateway never issues. The verifier says it parses them "defensively all the same": 401, not 500.
        Device("signed token with an expiry beyond year 9999", "Bearer {signed-huge-expiry}");
        Device("signed token whose payload is not base64", "Bearer {signed-not-base64}");
        Device("signed token with three payload fields", "Bearer {signed-three-fields}");
        Device("signed token with a negative expiry", "Bearer {signed-negative-expiry}");
        Device("signed token with a non-numeric stamp", "Bearer {signed-bad-stamp}");
        return cases;
    }

    private static Dictionary<string, FrameCase> BuildFrames()
    {
        var frames = new Dictionary<string, FrameCase>();
        void Error(string name, string text, string code = "INVALID_BODY") => frames.Add(name, new FrameCase(U(text), WebSocketMessageType.Text, code, null));

        frames.Add("binary frame", new FrameCase(U("{\"type\":\"heartbeat\",\"device_id\":\"canary\"}"), WebSocketMessageType.Binary, "INVALID_BODY", null));
        frames.Add("binary garbage", new FrameCase([0, 1, 2, 0xFF], WebSocketMessageType.Binary, "INVALID_BODY", null));

        // RFC 6455 8.1: a text frame that is not UTF-8 fails the connection (1007); the WebSocket stack does that.
        frames.Add("invalid UTF-8 text frame", new FrameCase(Cat(U("{\"type\":\"heartbeat\",\"device_id\":\"canary\",\"device_name\":\"a"), [0xFF], U("\"}")), WebSocketMessageType.Text, null, WebSocketCloseStatus.InvalidPayloadData));
        var big = U($"{{\"type\":\"heartbeat\",\"device_id\":\"canary\",\"pad\":\"{new string('p', 70 * 1024)}\"}}");
        frames.Add("70 KiB frame", new FrameCase(big, WebSocketMessageType.Text, null, WebSocketCloseStatus.MessageTooBig));
        frames.Add("70 KiB in 10 fragments", new FrameCase(big, WebSocketMessageType.Text, null, WebSocketCloseStatus.MessageTooBig, Fragments: 10));
        frames.Add("70 KiB binary frame", new FrameCase(big, WebSocketMessageType.Binary, null, WebSocketCloseStatus.MessageTooBig));

        Error("1000 objects deep", $"{{\"type\":\"heartbeat\",\"device_id\":\"canary\",\"x\":{Nest(1000)}}}");
        Error("1000 arrays deep before the type", $"{{\"x\":{new string('[', 1000)}{new string(']', 1000)},\"type\":\"heartbeat\",\"device_id\":\"canary\"}}");
        Error("heartbeat for a device never provisioned", "{\"type\":\"heartbeat\",\"device_id\":\"hv\"}", "FORBIDDEN");
        Error("heartbeat for another device of the tenant", "{\"type\":\"heartbeat\",\"device_id\":\"hv-existing\"}", "FORBIDDEN");
        Error("unknown type", "{\"type\":\"reboot\",\"device_id\":\"canary\"}");
        Error("type upper-case", "{\"type\":\"HEARTBEAT\",\"device_id\":\"canary\"}");
        Error("type missing", "{\"device_id\":\"canary\"}");
        Error("type number", "{\"type\":1,\"device_id\":\"canary\"}");
        Error("type 10 KB", $"{{\"type\":\"{new string('h', 10 * 1024)}\",\"device_id\":\"canary\"}}");
        Error("not json", "heartbeat canary");
        Error("empty frame", "");
        Error("array", "[{\"type\":\"heartbeat\",\"device_id\":\"canary\"}]");
        Error("heartbeat device_id invalid", "{\"type\":\"heartbeat\",\"device_id\":\"can ary\"}");
        Error("heartbeat device_id twice", "{\"type\":\"heartbeat\",\"device_id\":\"canary\",\"device_id\":\"hv\"}");
        Error("heartbeat device_name lone surrogate", "{\"type\":\"heartbeat\",\"device_id\":\"canary\",\"device_name\":\"\\ud800\"}");
        Error("heartbeat metric NaN", "{\"type\":\"heartbeat\",\"device_id\":\"canary\",\"metrics\":{\"cpu_pct\":NaN}}");
        Error("command_result before a heartbeat", "{\"type\":\"command_result\",\"command_id\":\"x\",\"ok\":true}", "CONFLICT");
        return frames;
    }

    private static Dictionary<string, string> BuildUpgrades() => new()
    {
        ["device channel, garbage"] = "/ws/device?access_token=garbage",
        ["device channel, none"] = "/ws/device",
        ["device channel, API key"] = "/ws/device?access_token={op}",
        ["device channel, wrong MAC"] = "/ws/device?access_token={token-bad-mac}",
        ["device channel, another key's token"] = "/ws/device?access_token={token-other-key}",
        ["events channel, garbage"] = "/ws/events?access_token=garbage",
        ["events channel, none"] = "/ws/events",
        ["events channel, device token"] = "/ws/events?access_token={token}",
        ["events channel, wrong key secret"] = "/ws/events?access_token={op-wrong-secret}",
    };

    /// <summary>A request body: raw bytes, a content type (null: none), chunked or with a length; placeholders resolved when it is text.</summary>
    public sealed record BodyCase(byte[] Bytes, int Status, string Code, string? ContentType = "application/json", bool Chunked = false)
    {
        public HttpContent Content(Func<string, string>? resolve = null)
        {
            var bytes = resolve is not null && System.Text.Unicode.Utf8.IsValid(Bytes) ? U(resolve(Encoding.UTF8.GetString(Bytes))) : Bytes;
            HttpContent content = Chunked ? new ChunkedContent(bytes) : new ByteArrayContent(bytes);
            content.Headers.ContentType = null;
            if (ContentType is not null)
            {
                content.Headers.TryAddWithoutValidation("Content-Type", ContentType);
            }

            return content;
        }
    }

    /// <summary>One hostile HTTP request; <c>{placeholders}</c> in path, headers and body are the fixture's credentials.</summary>
    public sealed record HttpCase(string Method, string Path, int Status, string Code)
    {
        public string? Authorization { get; init; }

        public (string Name, string Value)[] Headers { get; init; } = [];

        public BodyCase? Body { get; init; }
    }

    /// <summary>One hostile frame: either an error frame with <see cref="Code"/> or the socket closed with <see cref="Close"/>.</summary>
    public sealed record FrameCase(byte[] Payload, WebSocketMessageType Type, string? Code, WebSocketCloseStatus? Close, int Fragments = 1);

    /// <summary>
    /// The gateway in device-token mode with brute-force and heartbeat limits out of the way (see the class remarks), a
    /// tenant <c>acme</c> with operator, admin and viewer keys, and three devices: the canary, one never touched, one
    /// whose secret hostile rotations must not change.
    /// </summary>
    public sealed class Server : SecureServer
    {
        private readonly Lazy<Task<Setup>> _ready;
        private Dictionary<string, string> _placeholders = [];

        public Server() : base(new Dictionary<string, string>
        {
            ["Presence:Auth:FailuresPerMinute"] = "100000",
            ["Presence:RateLimit:HeartbeatsPerMinute"] = "1000000",
        })
        {
            _ready = new Lazy<Task<Setup>>(SetUpAsync);

            // Sends header values as UTF-8, so that non-ASCII credentials reach the server instead of failing in the client.
            Raw = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 }) { BaseAddress = BaseAddress };
        }

        /// <summary>A plain client: no redirects, no default headers, UTF-8 header values.</summary>
        public HttpClient Raw { get; }

        public Task<Setup> ReadyAsync() => _ready.Value;

        public string Resolve(string text)
        {
            foreach (var (name, value) in _placeholders)
            {
                text = text.Replace(name, value, StringComparison.Ordinal);
            }

            return text;
        }

        /// <summary>What a hostile request could have changed: acme's and default's devices (every field) and the event log's end.</summary>
        public async Task<string> FingerprintAsync()
        {
            var setup = await ReadyAsync();
            var builder = new StringBuilder();
            foreach (var (key, path) in new[] { (setup.Operator, "/api/v1/devices?limit=1000"), (AdminKey, "/api/v1/devices?limit=1000"), (setup.Operator, "/api/v1/events") })
            {
                using var response = await SendAsync(HttpMethod.Get, path, key);
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"fingerprint {path}: {(int)response.StatusCode} {text}");
                builder.AppendLine(text);
            }

            return builder.ToString();
        }

        /// <summary>Health, a heartbeat with the canary's token, and the rotation target's token still accepted.</summary>
        public async Task AssertStillServesAsync()
        {
            var setup = await ReadyAsync();
            using (var health = await Raw.GetAsync("/healthz"))
            {
                Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            }

            foreach (var (deviceId, token) in new[] { (Canary, setup.CanaryToken), (Rotated, setup.RotatedToken) })
            {
                using var beat = await BeatWithTokenAsync(deviceId, token);
                Assert.True(beat.StatusCode == HttpStatusCode.OK, $"heartbeat of {deviceId}: {(int)beat.StatusCode} {await beat.Content.ReadAsStringAsync()}");
            }
        }

        public override async ValueTask DisposeAsync()
        {
            Raw.Dispose();
            await base.DisposeAsync();
        }

        private async Task<Setup> SetUpAsync()
        {
            var (operatorId, operatorKey) = await CreateKeyAsync("acme", "operator");
            var (_, adminKey) = await CreateKeyAsync("acme", "admin");
            var (_, viewerKey) = await CreateKeyAsync("acme", "viewer");
            var secret = await ProvisionAsync(Canary, operatorKey);
            var token = await TokenAsync(Canary, secret);
            await ProvisionAsync(Existing, operatorKey, new { device_name = "Existing", timeout_s = 600, labels = new Dictionary<string, string> { ["team"] = "a" } });
            var rotatedToken = await TokenAsync(Rotated, await ProvisionAsync(Rotated, operatorKey));
            using (var first = await BeatWithTokenAsync(Canary, token))
            {
                Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            }

            var dot = token.LastIndexOf('.');
            var (signed, mac) = (token[..dot], token[(dot + 1)..]);
            var payload = Encoding.UTF8.GetString(Base64Url.DecodeFromChars(signed.AsSpan(3)));
            var fields = payload.Split('\n');
            const string OtherKey = "another-signing-key-0123456789abcdef-0123";
            const string Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
            string Payload(params string[] parts) => "v1." + Base64Url.EncodeToString(U(string.Join('\n', parts)));
            string Sign(string key, string signedPart) => signedPart + "." + Base64Url.EncodeToString(HMACSHA256.HashData(U(key), U(signedPart)));
            var secretRandom = secret[(secret.IndexOf('.', StringComparison.Ordinal) + 1)..];

            _placeholders = new Dictionary<string, string>
            {
                ["{op-wrong-secret}"] = $"pk.{operatorId}.{Base64Url.EncodeToString(new byte[32])}",
                ["{op-short}"] = operatorKey[..^1],
                ["{op-upper}"] = operatorKey.ToUpperInvariant(),
                ["{op-id}"] = operatorId,
                ["{op}"] = operatorKey,
                ["{admin}"] = adminKey,
                ["{viewer}"] = viewerKey,
                ["{boot}"] = AdminKey,
                ["{secret-random}"] = secretRandom,
                ["{secret-flipped}"] = secret[..^1] + (secret[^1] == 'A' ? 'B' : 'A'),
                ["{secret}"] = secret,
                ["{token-bad-mac}"] = $"{signed}.{(mac[0] == 'A' ? 'B' : 'A')}{mac[1..]}",
                ["{token-tampered}"] = $"{Payload(fields[0], Existing, fields[2], fields[3])}.{mac}",
                ["{token-tampered-stamp}"] = $"{Payload(fields[0], fields[1], "1", fields[3])}.{mac}",
                ["{token-tampered-expiry}"] = $"{Payload(fields[0], fields[1], fields[2], (long.Parse(fields[3], System.Globalization.CultureInfo.InvariantCulture) + 3_600_000).ToString(System.Globalization.CultureInfo.InvariantCulture))}.{mac}",
                ["{token-other-key-existing}"] = Sign(OtherKey, Payload(fields[0], Existing, fields[2], fields[3])),
                ["{token-other-key}"] = Sign(OtherKey, signed),
                ["{token-mac-low-bits}"] = $"{signed}.{mac[..^1]}{Alphabet[Alphabet.IndexOf(mac[^1], StringComparison.Ordinal) ^ 1]}",
                ["{token-v2}"] = "v2" + token[2..],
                ["{token-upper-prefix}"] = "V1" + token[2..],
                ["{token-no-mac}"] = signed,
                ["{token}"] = token,
                ["{signed-huge-expiry}"] = Sign(SigningKey, Payload(fields[0], fields[1], fields[2], "99999999999999999")),
                ["{signed-not-base64}"] = Sign(SigningKey, "v1.!!!!"),
                ["{signed-three-fields}"] = Sign(SigningKey, Payload(fields[0], fields[1], fields[2])),
                ["{signed-negative-expiry}"] = Sign(SigningKey, Payload(fields[0], fields[1], fields[2], "-1")),
                ["{signed-bad-stamp}"] = Sign(SigningKey, Payload(fields[0], fields[1], "stamp", fields[3])),
            };
            return new Setup(operatorKey, adminKey, token, rotatedToken);
        }
    }

    public sealed record Setup(string Operator, string Admin, string CanaryToken, string RotatedToken);
}

/// <summary>
/// Hostile <c>X-Connect-Secret</c> values (and credentials in the wrong place) in shared-secret mode: 401 in the one shape,
/// no device registered, and the service still takes heartbeats with the right secret. The failure limit is raised for
/// the same reason as in <see cref="HostileAuthInputTests"/>.
/// </summary>
public sealed class HostileConnectSecretTests(HostileConnectSecretTests.Server server) : IClassFixture<HostileConnectSecretTests.Server>
{
    private const string VictimBody = "{\"device_id\":\"hv\"}";

    private static readonly Dictionary<string, (string Method, string Path, int Status, string Code, (string Name, string Value)[] Headers)> Cases = BuildCases();

    public static int CaseCount => Cases.Count;

    public static TheoryData<string> ConnectCases => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(ConnectCases))]
    public async Task Hostile_connect_secret_gets_401_and_registers_nothing(string @case)
    {
        var (method, path, status, code, headers) = Cases[@case];
        var before = await FingerprintAsync();
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (method == "POST")
        {
            request.Content = ErrorShape.Json(VictimBody);
        }

        using var response = await server.Raw.SendAsync(request);

        await HostileAuthInputTests.AssertRefusedAsync(response, status, code, @case);
        Assert.Equal(before, await FingerprintAsync());
        using (var victim = await server.SendAsync(HttpMethod.Get, "/api/v1/devices/hv", SecureServer.AdminKey))
        {
            Assert.Equal(HttpStatusCode.NotFound, victim.StatusCode);
        }

        using (var health = await server.Raw.GetAsync("/healthz"))
        {
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        }

        using var beat = await server.SendAsync(HttpMethod.Post, "/api/v1/heartbeat", body: new { device_id = "canary" }, headers: [("X-Connect-Secret", SecureServer.ConnectSecret)]);
        Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
    }

    private async Task<string> FingerprintAsync()
    {
        var builder = new StringBuilder();
        foreach (var path in new[] { "/api/v1/devices?limit=1000", "/api/v1/events" })
        {
            using var response = await server.SendAsync(HttpMethod.Get, path, SecureServer.AdminKey);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            builder.AppendLine(await response.Content.ReadAsStringAsync());
        }

        return builder.ToString();
    }

    private static Dictionary<string, (string, string, int, string, (string, string)[])> BuildCases()
    {
        const string S = SecureServer.ConnectSecret;
        var cases = new Dictionary<string, (string, string, int, string, (string, string)[])>();
        void Beat(string name, params (string, string)[] headers) => cases.Add($"heartbeat {name}", ("POST", "/api/v1/heartbeat", 401, "UNAUTHORIZED", headers));
        Beat("no secret");
        Beat("empty secret", ("X-Connect-Secret", ""));
        Beat("wrong secret", ("X-Connect-Secret", "wrong-secret-0123456789"));
        Beat("secret and one character more", ("X-Connect-Secret", S + "x"));
        Beat("secret but one character", ("X-Connect-Secret", S[..^1]));
        Beat("secret upper-cased", ("X-Connect-Secret", S.ToUpperInvariant()));
        Beat("secret with a space inside", ("X-Connect-Secret", S[..5] + " " + S[5..]));
        Beat("secret 2000 characters", ("X-Connect-Secret", S + new string('x', 2000)));
        Beat("secret 10 KB", ("X-Connect-Secret", new string('s', 10 * 1024)));
        Beat("secret non-ascii", ("X-Connect-Secret", "\u0441\u0435\u043a\u0440\u0435\u0442"));
        Beat("secret twice", ("X-Connect-Secret", S), ("X-Connect-Secret", S));
        Beat("secret and garbage", ("X-Connect-Secret", S + ",garbage"));
        Beat("secret as a bearer token", ("Authorization", "Bearer " + S));
        Beat("secret as an API key", ("X-Api-Key", S));
        Beat("bootstrap admin key", ("X-Connect-Secret", SecureServer.AdminKey));
        Beat("bootstrap admin key as bearer", ("Authorization", "Bearer " + SecureServer.AdminKey));
        Beat("signing key", ("X-Connect-Secret", SecureServer.SigningKey));
        cases.Add("heartbeat secret in the query", ("POST", $"/api/v1/heartbeat?access_token={S}", 401, "UNAUTHORIZED", []));
        cases.Add("alias wrong secret", ("POST", "/api/connect", 401, "UNAUTHORIZED", [("X-Connect-Secret", "wrong-secret-0123456789")]));
        cases.Add("alias no secret", ("POST", "/api/connect", 401, "UNAUTHORIZED", []));
        cases.Add("device channel wrong secret", ("GET", "/ws/device", 401, "UNAUTHORIZED", [("X-Connect-Secret", "wrong-secret-0123456789")]));
        cases.Add("device channel secret in the query", ("GET", $"/ws/device?access_token={S}", 401, "UNAUTHORIZED", []));
        cases.Add("portal with the connect secret", ("GET", "/api/v1/devices", 401, "UNAUTHORIZED", [("X-Connect-Secret", S)]));
        cases.Add("portal with the connect secret as bearer", ("GET", "/api/v1/devices", 401, "UNAUTHORIZED", [("Authorization", "Bearer " + S)]));
        cases.Add("token endpoint in shared-secret mode", ("POST", "/api/v1/devices/auth", 404, "NOT_FOUND", [("X-Connect-Secret", S)]));
        return cases;
    }

    /// <summary>The gateway in shared-secret mode (devices self-register in <c>default</c>), failure limit out of the way.</summary>
    public sealed class Server : SecureServer
    {
        public Server() : base(new Dictionary<string, string>
        {
            ["Presence:Auth:Mode"] = "shared-secret",
            ["Presence:Auth:FailuresPerMinute"] = "100000",
            ["Presence:RateLimit:HeartbeatsPerMinute"] = "1000000",
        })
        {
            Raw = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 }) { BaseAddress = BaseAddress };
        }

        public HttpClient Raw { get; }

        public override async ValueTask DisposeAsync()
        {
            Raw.Dispose();
            await base.DisposeAsync();
        }
    }
}
