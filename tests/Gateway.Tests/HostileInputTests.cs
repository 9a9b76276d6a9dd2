using System.Net;
using System.Text;

namespace Presence.Gateway.Tests;

/// <summary>
/// A corpus of hostile heartbeat bodies, query strings and path segments. Each gets a 4xx in the one error shape
/// (never a 5xx), applies nothing, and leaves the service answering <c>/healthz</c> and valid heartbeats.
/// </summary>
public sealed class HostileInputTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    /// <summary>The device id every hostile body with an otherwise valid id uses: it must never get registered.</summary>
    private const string Victim = "hv";

    private static int _canaries;

    private static readonly Dictionary<string, byte[]> Bodies = BuildBodies();

    private static readonly Dictionary<string, (string Method, string Path, int? Status)> Requests = BuildRequests();

    public static TheoryData<string> BodyCases => [.. Bodies.Keys];

    public static TheoryData<string> RequestCases => [.. Requests.Keys];

    [Fact]
    public void Corpus_has_at_least_150_hostile_inputs()
    {
        Assert.True(Bodies.Count >= 150, $"only {Bodies.Count} hostile bodies");
        Assert.True(Bodies.Count + Requests.Count >= 200, $"only {Bodies.Count + Requests.Count} hostile inputs");
    }

    [Theory]
    [MemberData(nameof(BodyCases))]
    public async Task Hostile_heartbeat_body_gets_422_in_the_one_shape_and_applies_nothing(string @case)
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Raw(Bodies[@case]));
        var text = await response.Content.ReadAsStringAsync();
        var applied = await RemoveVictimAsync();

        Assert.True(response.StatusCode == HttpStatusCode.UnprocessableEntity, $"{@case}: expected 422, got {(int)response.StatusCode}: {text}");
        var error = ErrorShape.AssertShape(response, text);
        Assert.Equal("INVALID_BODY", error.GetProperty("code").GetString());
        Assert.False(applied, $"{@case}: a rejected body registered '{Victim}'");
        await AssertServiceStillAnswersAsync();
    }

    [Theory]
    [MemberData(nameof(BodyCases))]
    public async Task Hostile_body_on_the_connect_alias_is_never_accepted_or_a_5xx(string @case)
    {
        using var response = await server.Http.PostAsync("/api/connect", ErrorShape.Raw(Bodies[@case]));
        var text = await response.Content.ReadAsStringAsync();
        var applied = await RemoveVictimAsync();

        Assert.True((int)response.StatusCode is >= 400 and < 500, $"{@case}: expected 4xx, got {(int)response.StatusCode}: {text}");
        ErrorShape.AssertShape(response, text);
        Assert.False(applied, $"{@case}: a rejected body registered '{Victim}'");
    }

    [Theory]
    [MemberData(nameof(RequestCases))]
    public async Task Hostile_query_or_path_gets_a_4xx_in_the_one_shape(string @case)
    {
        var (method, path, status) = Requests[@case];
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (method == "POST")
        {
            request.Content = ErrorShape.Json("{\"name\":\"reboot\"}");
        }

        using var response = await server.Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();

        Assert.True((int)response.StatusCode is >= 400 and < 500, $"{@case}: expected 4xx, got {(int)response.StatusCode}: {text}");
        if (status is { } expected)
        {
            Assert.True((int)response.StatusCode == expected, $"{@case}: expected {expected}, got {(int)response.StatusCode}: {text}");
        }

        ErrorShape.AssertShape(response, text);
        await AssertServiceStillAnswersAsync();
    }

    /// <summary>Requests Kestrel refuses itself (request line, headers) before any middleware runs: no JSON body is possible there.</summary>
    public static TheoryData<string, string> RequestsKestrelRefuses => new()
    {
        { "GET", "/api/v1/devices/a%00b" },
        { "DELETE", "/api/v1/devices/a%00b" },
        { "GET", "/api/v1/devices/a%00b/sessions" },
        { "POST", "/api/v1/devices/a%00b/commands" },
        { "GET", $"/api/v1/devices?prefix={new string('p', 20_000)}" },
        { "GET", $"/api/v1/devices/{new string('d', 20_000)}" },
    };

    [Theory]
    [MemberData(nameof(RequestsKestrelRefuses))]
    public async Task Request_refused_by_kestrel_gets_a_4xx_and_harms_nothing(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await server.Http.SendAsync(request);

        Assert.True((int)response.StatusCode is >= 400 and < 500, $"expected 4xx, got {(int)response.StatusCode}");
        await AssertServiceStillAnswersAsync();
    }

    [Fact]
    public async Task Oversized_request_headers_get_a_4xx_and_harm_nothing()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/api/v1/heartbeat") { Content = ErrorShape.Json($"{{\"device_id\":\"{Victim}\"}}") };
        request.Headers.TryAddWithoutValidation("X-Junk", new string('j', 64 * 1024));
        using var response = await server.Http.SendAsync(request);
        var applied = await RemoveVictimAsync();

        Assert.True((int)response.StatusCode is >= 400 and < 500, $"expected 4xx, got {(int)response.StatusCode}");
        Assert.False(applied);
        await AssertServiceStillAnswersAsync();
    }

    public static TheoryData<string, string> HostileCommandBodies => new()
    {
        { "not json", "{name" },
        { "array", "[{\"name\":\"reboot\"}]" },
        { "name null", "{\"name\":null}" },
        { "name object", "{\"name\":{}}" },
        { "name empty", "{\"name\":\"\"}" },
        { "name too long", $"{{\"name\":\"{new string('r', 65)}\"}}" },
        { "name lone surrogate", "{\"name\":\"\\ud800\"}" },
        { "args string", "{\"name\":\"reboot\",\"args\":\"x\"}" },
        { "args deeply nested", $"{{\"name\":\"reboot\",\"args\":{Nest(1000)}}}" },
        { "trailing garbage", "{\"name\":\"reboot\"} x" },
        { "NaN in args", "{\"name\":\"reboot\",\"args\":{\"n\":NaN}}" },
        { "empty", "" },
    };

    [Theory]
    [MemberData(nameof(HostileCommandBodies))]
    public async Task Hostile_command_body_gets_422_in_the_one_shape(string @case, string body)
    {
        using (var heartbeat = await server.HeartbeatAsync("hostile-command-target"))
        {
            Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
        }

        using var response = await server.Http.PostAsync("/api/v1/devices/hostile-command-target/commands", ErrorShape.Json(body));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode == HttpStatusCode.UnprocessableEntity, $"{@case}: expected 422, got {(int)response.StatusCode}: {text}");
        Assert.Equal("INVALID_BODY", ErrorShape.AssertShape(response, text).GetProperty("code").GetString());
    }

    public static TheoryData<string, string> OddButValidBodies => new()
    {
        { "unknown fields of every type", "{\"device_id\":\"ok-1\",\"x\":null,\"y\":[1,{\"z\":true}],\"w\":1e400,\"v\":\"\\ud800\"}" },
        { "unknown field nested 20 deep", $"{{\"device_id\":\"ok-2\",\"deep\":{Nest(20)}}}" },
        { "huge unknown string", $"{{\"device_id\":\"ok-3\",\"blob\":\"{new string('b', 60_000)}\"}}" },
        { "null optional fields", "{\"device_id\":\"ok-4\",\"device_name\":null,\"platform\":null,\"app_version\":null,\"metrics\":null,\"containers\":null}" },
        { "escaped and astral unicode name", "{\"device_id\":\"ok-5\",\"device_name\":\"R\\u00e9ck \\ud83d\\ude80 \u6a5f\"}" },
        { "edge numbers", "{\"device_id\":\"ok-6\",\"metrics\":{\"a\":-0,\"b\":1e308,\"c\":-1.7976931348623157e308,\"d\":1e-400,\"e\":123456789012345678901234567890}}" },
        { "32 metrics", $"{{\"device_id\":\"ok-7\",\"metrics\":{{{string.Join(',', Enumerable.Range(0, 32).Select(i => $"\"m{i}\":{i}"))}}}}}" },
        { "256 containers", $"{{\"device_id\":\"ok-8\",\"containers\":[{string.Join(',', Enumerable.Range(0, 256).Select(i => $"{{\"name\":\"c{i}\"}}"))}]}}" },
        { "whitespace everywhere", " \r\n\t{ \"device_id\" : \"ok-9\" , \"metrics\" : { } } \r\n\t" },
        { "every id character", "{\"device_id\":\"AZaz09_.:@-\"}" },
        { "128 character id", $"{{\"device_id\":\"{new string('i', 128)}\"}}" },
        { "escaped key", "{\"device\\u005fid\":\"ok-10\"}" },
    };

    [Theory]
    [MemberData(nameof(OddButValidBodies))]
    public async Task Odd_but_valid_body_is_accepted(string @case, string body)
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Json(body));

        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{@case}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    [Fact]
    public async Task Body_with_a_byte_order_mark_is_either_accepted_or_422_never_a_5xx()
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Raw([0xEF, 0xBB, 0xBF, .. "{\"device_id\":\"bom-1\"}"u8]));
        var text = await response.Content.ReadAsStringAsync();

        Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.UnprocessableEntity, $"{(int)response.StatusCode}: {text}");
        if (response.StatusCode != HttpStatusCode.OK)
        {
            ErrorShape.AssertShape(response, text);
        }
    }

    /// <summary>Whether the victim device exists; it is removed at once so one failing case does not fail the next.</summary>
    private async Task<bool> RemoveVictimAsync()
    {
        using var deleted = await server.Http.DeleteAsync($"/api/v1/devices/{Victim}");
        return deleted.StatusCode != HttpStatusCode.NotFound;
    }

    private async Task AssertServiceStillAnswersAsync()
    {
        using var health = await server.Http.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var heartbeat = await server.HeartbeatAsync($"canary-{Interlocked.Increment(ref _canaries)}");
        Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
    }

    private static string Nest(int depth) => string.Concat(Enumerable.Repeat("{\"a\":", depth - 1)) + "{}" + new string('}', depth - 1);

    private static Dictionary<string, byte[]> BuildBodies()
    {
        var bodies = new Dictionary<string, byte[]>();
        void Add(string name, string json) => bodies.Add(name, Encoding.UTF8.GetBytes(json));
        void AddBytes(string name, params byte[][] parts) => bodies.Add(name, [.. parts.SelectMany(p => p)]);
        static byte[] U(string text) => Encoding.UTF8.GetBytes(text);
        var v = $"\"device_id\":\"{Victim}\"";

        // Wrong JSON types for every field.
        foreach (var (label, value) in new[] { ("number", "1"), ("negative", "-1"), ("float", "1.5"), ("true", "true"), ("false", "false"), ("object", "{}"), ("array", "[]"), ("string array", "[\"hv\"]"), ("null", "null") })
        {
            Add($"device_id {label}", $"{{\"device_id\":{value}}}");
        }

        foreach (var field in new[] { "device_name", "platform", "app_version" })
        {
            foreach (var (label, value) in new[] { ("number", "1"), ("float", "1.5"), ("true", "true"), ("false", "false"), ("object", "{\"a\":\"b\"}"), ("array", "[]"), ("string array", "[\"x\"]") })
            {
                Add($"{field} {label}", $"{{{v},\"{field}\":{value}}}");
            }
        }

        foreach (var (label, value) in new[] { ("string", "\"x\""), ("number", "1"), ("true", "true"), ("false", "false"), ("array", "[]"), ("number array", "[1]"), ("json in a string", "\"{}\"") })
        {
            Add($"metrics {label}", $"{{{v},\"metrics\":{value}}}");
        }

        foreach (var (label, value) in new[] { ("string", "\"web\""), ("number", "1"), ("true", "true"), ("object", "{}"), ("single container object", "{\"name\":\"web\"}") })
        {
            Add($"containers {label}", $"{{{v},\"containers\":{value}}}");
        }

        foreach (var (label, value) in new[] { ("number as string", "\"12.5\""), ("true", "true"), ("false", "false"), ("null", "null"), ("object", "{}"), ("array", "[]"), ("number array", "[1]"), ("NaN as string", "\"NaN\"") })
        {
            Add($"metric value {label}", $"{{{v},\"metrics\":{{\"cpu_pct\":{value}}}}}");
        }

        foreach (var (label, value) in new[] { ("string", "\"web\""), ("number", "1"), ("null", "null"), ("true", "true"), ("array", "[]"), ("nested array", "[{\"name\":\"web\"}]") })
        {
            Add($"container item {label}", $"{{{v},\"containers\":[{value}]}}");
        }

        foreach (var (field, label, value) in new[]
        {
            ("name", "number", "1"), ("name", "null", "null"), ("name", "true", "true"), ("name", "object", "{}"), ("name", "array", "[]"),
            ("image", "number", "1"), ("image", "true", "true"), ("image", "object", "{}"), ("image", "array", "[]"),
            ("state", "number", "1"), ("state", "array", "[]"), ("ports", "number", "80"), ("ports", "object", "{}"),
        })
        {
            var name = field == "name" ? "" : "\"name\":\"web\",";
            Add($"container {field} {label}", $"{{{v},\"containers\":[{{{name}\"{field}\":{value}}}]}}");
        }

        // Not one JSON object.
        Add("empty body", "");
        Add("whitespace only", " \r\n\t ");
        Add("top-level null", "null");
        Add("top-level true", "true");
        Add("top-level false", "false");
        Add("top-level number", "0");
        Add("top-level string", "\"hv\"");
        Add("top-level empty array", "[]");
        Add("array of heartbeats", $"[{{{v}}}]");
        Add("empty object", "{}");
        Add("no device_id", "{\"device_name\":\"hv\",\"platform\":\"linux\"}");
        Add("lone open brace", "{");
        Add("lone close brace", "}");
        Add("truncated after key", "{\"device_id\"");
        Add("truncated after colon", "{\"device_id\":");
        Add("truncated object", $"{{{v}");
        Add("truncated string", "{\"device_id\":\"hv");
        Add("missing value", "{\"device_id\":}");
        Add("trailing comma", $"{{{v},}}");
        Add("leading comma", $"{{,{v}}}");
        Add("double comma", $"{{{v},,\"platform\":\"linux\"}}");
        Add("single quotes", "{'device_id':'hv'}");
        Add("unquoted key", "{device_id:\"hv\"}");
        Add("unquoted value", "{\"device_id\":hv}");
        Add("trailing garbage", $"{{{v}}} x");
        Add("two objects", $"{{{v}}}{{}}");
        Add("two objects on two lines", $"{{{v}}}\n{{{v}}}");
        Add("stray closing bracket", $"{{{v}}}]");
        Add("line comment", $"{{{v}}} // hi");
        Add("block comment", $"/* hi */{{{v}}}");
        AddBytes("trailing NUL byte", U($"{{{v}}}"), [0]);
        AddBytes("leading NUL byte", [0], U($"{{{v}}}"));
        Add("javascript", "alert(1)");
        Add("xml", "<heartbeat device_id=\"hv\"/>");
        Add("form encoded", "device_id=hv");

        // Numbers JSON does not have, or doubles cannot hold.
        foreach (var (label, value) in new[]
        {
            ("NaN literal", "NaN"), ("Infinity literal", "Infinity"), ("negative Infinity literal", "-Infinity"), ("1e400", "1e400"),
            ("-1e400", "-1e400"), ("hex", "0x10"), ("leading zero", "01"), ("leading plus", "+1"), ("leading dot", ".5"),
            ("trailing dot", "1."), ("bare exponent", "1e"), ("double minus", "--1"), ("huge exponent", "1e99999999999"),
        })
        {
            Add($"metric {label}", $"{{{v},\"metrics\":{{\"cpu_pct\":{value}}}}}");
        }

        // Strings out of range, control characters, forbidden characters.
        Add("device_id 129 characters", $"{{\"device_id\":\"{new string('d', 129)}\"}}");
        Add("device_id 60000 characters", $"{{\"device_id\":\"{new string('d', 60_000)}\"}}");
        Add("device_id 20000 escapes", $"{{\"device_id\":\"{string.Concat(Enumerable.Repeat("\\u0041", 10_000))}\"}}");
        Add("device_id empty", "{\"device_id\":\"\"}");
        Add("device_id space", "{\"device_id\":\"h v\"}");
        Add("device_id slash", "{\"device_id\":\"h/v\"}");
        Add("device_id non-ascii", "{\"device_id\":\"h\u00e9v\"}");
        Add("device_id escaped NUL", "{\"device_id\":\"hv\\u0000\"}");
        Add("device_id raw tab", "{\"device_id\":\"h\tv\"}");
        Add("device_id raw newline", "{\"device_id\":\"h\nv\"}");
        Add("device_id fullwidth letters", "{\"device_id\":\"\uff48\uff56\"}");
        Add("device_name 129 characters", $"{{{v},\"device_name\":\"{new string('n', 129)}\"}}");
        Add("device_name 129 characters inside spaces", $"{{{v},\"device_name\":\"  {new string('n', 129)}  \"}}");
        Add("device_name 50000 characters", $"{{{v},\"device_name\":\"{new string('n', 50_000)}\"}}");
        Add("device_name empty", $"{{{v},\"device_name\":\"\"}}");
        Add("device_name blank", $"{{{v},\"device_name\":\"   \"}}");
        Add("device_name escaped NUL", $"{{{v},\"device_name\":\"a\\u0000b\"}}");
        Add("device_name escaped unit separator", $"{{{v},\"device_name\":\"a\\u001fb\"}}");
        Add("device_name escaped DEL", $"{{{v},\"device_name\":\"a\\u007fb\"}}");
        Add("device_name escaped C1 control", $"{{{v},\"device_name\":\"a\\u0085b\"}}");
        Add("device_name escaped newline", $"{{{v},\"device_name\":\"a\\nb\"}}");
        Add("device_name raw control byte", $"{{{v},\"device_name\":\"a\u0001b\"}}");
        Add("platform 33 characters", $"{{{v},\"platform\":\"{new string('p', 33)}\"}}");
        Add("platform uppercase", $"{{{v},\"platform\":\"Linux\"}}");
        Add("platform space", $"{{{v},\"platform\":\"li nux\"}}");
        Add("platform empty", $"{{{v},\"platform\":\"\"}}");
        Add("app_version 65 characters", $"{{{v},\"app_version\":\"{new string('1', 65)}\"}}");
        Add("app_version empty", $"{{{v},\"app_version\":\"\"}}");
        Add("app_version escaped tab", $"{{{v},\"app_version\":\"1.0\\t\"}}");
        Add("metric key empty", $"{{{v},\"metrics\":{{\"\":1}}}}");
        Add("metric key 65 characters", $"{{{v},\"metrics\":{{\"{new string('k', 65)}\":1}}}}");
        Add("metric key 5000 characters", $"{{{v},\"metrics\":{{\"{new string('k', 5_000)}\":1}}}}");
        Add("metric key uppercase", $"{{{v},\"metrics\":{{\"CPU\":1}}}}");
        Add("metric key space", $"{{{v},\"metrics\":{{\"cpu pct\":1}}}}");
        Add("metric key non-ascii", $"{{{v},\"metrics\":{{\"cp\u00fc\":1}}}}");
        Add("33 metrics", $"{{{v},\"metrics\":{{{string.Join(',', Enumerable.Range(0, 33).Select(i => $"\"m{i}\":{i}"))}}}}}");
        Add("1000 metrics", $"{{{v},\"metrics\":{{{string.Join(',', Enumerable.Range(0, 1000).Select(i => $"\"m{i}\":{i}"))}}}}}");
        Add("257 containers", $"{{{v},\"containers\":[{string.Join(',', Enumerable.Range(0, 257).Select(i => $"{{\"name\":\"c{i}\"}}"))}]}}");
        Add("5000 empty containers", $"{{{v},\"containers\":[{string.Join(',', Enumerable.Repeat("{}", 5_000))}]}}");
        Add("container without name", $"{{{v},\"containers\":[{{\"image\":\"nginx\"}}]}}");
        Add("container name empty", $"{{{v},\"containers\":[{{\"name\":\"\"}}]}}");
        Add("container name 129 characters", $"{{{v},\"containers\":[{{\"name\":\"{new string('c', 129)}\"}}]}}");
        Add("container name 20000 characters", $"{{{v},\"containers\":[{{\"name\":\"{new string('c', 20_000)}\"}}]}}");
        Add("container image 257 characters", $"{{{v},\"containers\":[{{\"name\":\"web\",\"image\":\"{new string('i', 257)}\"}}]}}");
        Add("container state 33 characters", $"{{{v},\"containers\":[{{\"name\":\"web\",\"state\":\"{new string('s', 33)}\"}}]}}");
        Add("container ports 129 characters", $"{{{v},\"containers\":[{{\"name\":\"web\",\"ports\":\"{new string('8', 129)}\"}}]}}");
        Add("container name bell", $"{{{v},\"containers\":[{{\"name\":\"w\\u0007b\"}}]}}");

        // Escapes: lone surrogates and malformed escapes.
        Add("device_id lone high surrogate", "{\"device_id\":\"\\ud800\"}");
        Add("device_id lone low surrogate", "{\"device_id\":\"hv\\udc00\"}");
        Add("device_name lone high surrogate", $"{{{v},\"device_name\":\"\\ud800\"}}");
        Add("device_name lone low surrogate", $"{{{v},\"device_name\":\"\\udc00\"}}");
        Add("device_name surrogate inside text", $"{{{v},\"device_name\":\"a\\ud800b\"}}");
        Add("device_name two high surrogates", $"{{{v},\"device_name\":\"\\ud800\\ud800\"}}");
        Add("device_name reversed surrogate pair", $"{{{v},\"device_name\":\"\\ude80\\ud83d\"}}");
        Add("app_version lone surrogate", $"{{{v},\"app_version\":\"1.\\udfff\"}}");
        Add("metric key lone surrogate", $"{{{v},\"metrics\":{{\"\\ud800\":1}}}}");
        Add("container name lone surrogate", $"{{{v},\"containers\":[{{\"name\":\"\\ud800\"}}]}}");
        Add("escape with non-hex digits", $"{{{v},\"device_name\":\"\\uZZZZ\"}}");
        Add("short unicode escape", $"{{{v},\"device_name\":\"\\u12\"}}");
        Add("unknown escape", $"{{{v},\"device_name\":\"\\x41\"}}");
        Add("escaped single quote", $"{{{v},\"device_name\":\"\\'\"}}");

        // Bytes that are not UTF-8.
        AddBytes("device_id invalid byte FF", U("{\"device_id\":\"h"), [0xFF], U("v\"}"));
        AddBytes("device_id lone continuation byte", U("{\"device_id\":\"h"), [0x80], U("v\"}"));
        AddBytes("device_name overlong slash", U($"{{{v},\"device_name\":\"a"), [0xC0, 0xAF], U("\"}"));
        AddBytes("device_name truncated sequence", U($"{{{v},\"device_name\":\"a"), [0xE2, 0x82], U("\"}"));
        AddBytes("app_version encoded surrogate", U($"{{{v},\"app_version\":\"1"), [0xED, 0xA0, 0x80], U("\"}"));
        AddBytes("platform byte FE", U($"{{{v},\"platform\":\"l"), [0xFE], U("\"}"));
        AddBytes("metric key invalid byte", U($"{{{v},\"metrics\":{{\"c"), [0xFF], U("\":1}}"));
        AddBytes("container name invalid byte", U($"{{{v},\"containers\":[{{\"name\":\"w"), [0xC3], U("\"}]}"));
        AddBytes("invalid byte between tokens", U($"{{{v},"), [0xFF], U("\"platform\":\"linux\"}"));
        AddBytes("unknown key invalid byte", U($"{{{v},\"x"), [0xFF], U("\":1}"));
        AddBytes("unknown value invalid byte", U($"{{{v},\"note\":\"x"), [0xFF, 0xFE], U("\"}"));
        AddBytes("code point above U+10FFFF", U($"{{{v},\"note\":\""), [0xF4, 0x90, 0x80, 0x80], U("\"}"));
        AddBytes("UTF-16 LE with BOM", [0xFF, 0xFE], Encoding.Unicode.GetBytes($"{{{v}}}"));
        AddBytes("UTF-16 BE", Encoding.BigEndianUnicode.GetBytes($"{{{v}}}"));
        AddBytes("UTF-32", Encoding.UTF32.GetBytes($"{{{v}}}"));

        // Duplicate keys.
        Add("device_id twice", "{\"device_id\":\"hv\",\"device_id\":\"hw\"}");
        Add("device_id twice with one value", $"{{{v},{v}}}");
        Add("device_id then null", $"{{{v},\"device_id\":null}}");
        Add("device_id escaped duplicate", $"{{{v},\"device\\u005fid\":\"hv\"}}");
        Add("device_name twice", $"{{{v},\"device_name\":\"a\",\"device_name\":\"b\"}}");
        Add("platform twice", $"{{{v},\"platform\":\"linux\",\"platform\":\"ios\"}}");
        Add("app_version twice", $"{{{v},\"app_version\":\"1\",\"app_version\":\"2\"}}");
        Add("metrics twice", $"{{{v},\"metrics\":{{}},\"metrics\":{{}}}}");
        Add("containers twice", $"{{{v},\"containers\":[],\"containers\":[]}}");
        Add("metric key twice", $"{{{v},\"metrics\":{{\"cpu_pct\":1,\"cpu_pct\":2}}}}");
        Add("custom metric key twice", $"{{{v},\"metrics\":{{\"x.y\":1,\"x.y\":2}}}}");

        // Depth.
        Add("unknown field 1000 objects deep", $"{{{v},\"deep\":{Nest(1000)}}}");
        Add("unknown field 1000 arrays deep", $"{{{v},\"deep\":{new string('[', 1000)}{new string(']', 1000)}}}");
        Add("unknown field 100 mixed deep", $"{{{v},\"deep\":{string.Concat(Enumerable.Repeat("[{\"a\":", 50))}1{string.Concat(Enumerable.Repeat("}]", 50))}}}");
        Add("container unknown field 1000 deep", $"{{{v},\"containers\":[{{\"name\":\"web\",\"x\":{Nest(1000)}}}]}}");
        Add("metric value nested object", $"{{{v},\"metrics\":{{\"cpu_pct\":{Nest(40)}}}}}");
        Add("unclosed 1000 arrays", $"{{{v},\"deep\":{new string('[', 1000)}");

        // Byte order marks around something invalid.
        AddBytes("BOM alone", [0xEF, 0xBB, 0xBF]);
        AddBytes("BOM then empty object", [0xEF, 0xBB, 0xBF], U("{}"));
        AddBytes("BOM then array", [0xEF, 0xBB, 0xBF], U($"[{{{v}}}]"));
        AddBytes("two BOMs", [0xEF, 0xBB, 0xBF, 0xEF, 0xBB, 0xBF], U($"{{{v}}}"));
        AddBytes("BOM in the middle", U($"{{{v},"), [0xEF, 0xBB, 0xBF], U("\"platform\":\"linux\"}"));

        return bodies;
    }

    private static Dictionary<string, (string Method, string Path, int? Status)> BuildRequests()
    {
        var requests = new Dictionary<string, (string, string, int?)>();
        var long129 = new string('q', 129);

        foreach (var limit in new[] { "0", "1001", "-1", "abc", "1.5", "1e3", "%205", "5%20", "%2B5", "0x10", "99999999999999999999", "%00", "%EF%BC%91", "1&limit=2" })
        {
            requests.Add($"devices limit={limit}", ("GET", $"/api/v1/devices?limit={limit}", 400));
            requests.Add($"events limit={limit}", ("GET", $"/api/v1/events?limit={limit}", 400));
        }

        foreach (var limit in new[] { "0", "1001", "abc", "-5" })
        {
            requests.Add($"sessions limit={limit}", ("GET", $"/api/v1/devices/hq/sessions?limit={limit}", 400));
        }

        foreach (var status in new[] { "bogus", "ONLINE", "online%20", "online&status=offline", "%00", "1" })
        {
            requests.Add($"devices status={status}", ("GET", $"/api/v1/devices?status={status}", 400));
        }

        foreach (var name in new[] { "prefix", "after" })
        {
            foreach (var value in new[] { "a%20b", long129, "%C3%A9", "a%2Fb", "%00", "a%25b", "%3Cscript%3E" })
            {
                requests.Add($"devices {name}={value}", ("GET", $"/api/v1/devices?{name}={value}", 400));
            }
        }

        foreach (var since in new[] { "abc", "0-1", "-5", "1-", "1-x", "1--1", "%201-1", "g-1", "ffffffffffffffffffff-1", "1-99999999999999999999", "1-" + new string('1', 40), "1-1&since=1-2", "1-1.5", "1-%2B1", "%2B1-1", "1-1-1", "%00" })
        {
            requests.Add($"events since={since}", ("GET", $"/api/v1/events?since={since}", 400));
        }

        requests.Add("events since from another epoch", ("GET", "/api/v1/events?since=1-5", 410));
        foreach (var value in new[] { "a%20b", long129, "%C3%A9", "a%2Fb" })
        {
            requests.Add($"events device_id={value}", ("GET", $"/api/v1/events?device_id={value}", 400));
        }

        foreach (var segment in new[]
        {
            "a%20b", long129, "a%2Fb", "%C3%A9", "a%3Bb", "a+b", "a%2Bb", "a%25b", "a%22b", "a%27b", "%3Cscript%3E", "a%5Cb",
            "a%7Bb", "a%0Ab", "a%09b", "a%7Fb", "%E2%80%AE", "%F0%9F%9A%80", "%FF", "%C0%AF",
        })
        {
            requests.Add($"GET device {segment}", ("GET", $"/api/v1/devices/{segment}", 400));
        }

        foreach (var segment in new[] { "a%20b", long129, "a%2Fb", "%FF", "a%0Ab" })
        {
            requests.Add($"DELETE device {segment}", ("DELETE", $"/api/v1/devices/{segment}", 400));
            requests.Add($"sessions of {segment}", ("GET", $"/api/v1/devices/{segment}/sessions", 400));
            requests.Add($"command to {segment}", ("POST", $"/api/v1/devices/{segment}/commands", 400));
        }

        // Paths that normalise or route elsewhere: any 4xx in the shape.
        requests.Add("dot dot segments", ("GET", "/api/v1/devices/%2E%2E/%2E%2E/secret", null));
        requests.Add("device id then extra segments", ("GET", "/api/v1/devices/a/b/c", null));
        requests.Add("double slash", ("GET", "/api/v1//devices", null));
        requests.Add("empty device segment delete", ("DELETE", "/api/v1/devices/", null));
        requests.Add("unknown api version", ("GET", "/api/v0/devices", 404));
        requests.Add("upper-case route", ("POST", "/API/V1/HEARTBEATS", 404));
        return requests;
    }
}
