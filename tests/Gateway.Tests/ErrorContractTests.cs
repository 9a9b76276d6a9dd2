using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;

namespace Presence.Gateway.Tests;

/// <summary>
/// API.md's one error shape, <c>{"error":{"code","message","details"?}}</c>, checked the same way on every error response.
/// </summary>
internal static class ErrorShape
{
    /// <summary>API.md's error table (plus 405, the README's documented choice): each code has one status.</summary>
    public static readonly IReadOnlyDictionary<string, int> StatusOfCode = new Dictionary<string, int>
    {
        ["INVALID_BODY"] = 422,
        ["INVALID_QUERY"] = 400,
        ["UNAUTHORIZED"] = 401,
        ["FORBIDDEN"] = 403,
        ["NOT_FOUND"] = 404,
        ["METHOD_NOT_ALLOWED"] = 405,
        ["CONFLICT"] = 409,
        ["DEVICE_NOT_CONNECTED"] = 409,
        ["CURSOR_EXPIRED"] = 410,
        ["PAYLOAD_TOO_LARGE"] = 413,
        ["UNSUPPORTED_MEDIA_TYPE"] = 415,
        ["RATE_LIMITED"] = 429,
        ["UNAVAILABLE"] = 503,
        ["INTERNAL"] = 500,
    };

    /// <summary>Asserts status, code, the shape, and (when given) a <c>details</c> entry for <paramref name="field"/>.</summary>
    public static async Task<JsonElement> AssertAsync(HttpResponseMessage response, HttpStatusCode status, string code, string? field = null, string? problem = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status} {code}, got {(int)response.StatusCode}: {text}");
        var error = AssertShape(response, text);
        Assert.Equal(code, error.GetProperty("code").GetString());
        if (field is not null)
        {
            Assert.True(error.TryGetProperty("details", out var details), $"expected details for '{field}': {text}");
            Assert.Contains(details.EnumerateArray(), d =>
                d.TryGetProperty("field", out var f) && f.GetString() == field
                && (problem is null || (d.TryGetProperty("problem", out var p) && p.GetString() == problem)));
        }

        return error;
    }

    /// <summary>The shape alone: JSON content type, exactly one <c>error</c> object, a known code matching the status, a clean message.</summary>
    public static JsonElement AssertShape(HttpResponseMessage response, string text)
    {
        var status = (int)response.StatusCode;
        Assert.True(status >= 400, $"not an error: {status} {text}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);

        JsonElement root;
        try
        {
            root = JsonDocument.Parse(text).RootElement.Clone();
        }
        catch (JsonException e)
        {
            Assert.Fail($"{status}: error body is not JSON ({e.Message}): {text}");
            throw;
        }

        Assert.Equal(JsonValueKind.Object, root.ValueKind);
        Assert.Equal(["error"], root.EnumerateObject().Select(p => p.Name));
        var error = root.GetProperty("error");
        Assert.Equal(JsonValueKind.Object, error.ValueKind);
        Assert.All(error.EnumerateObject(), p => Assert.Contains(p.Name, new[] { "code", "message", "details" }));

        var code = error.GetProperty("code").GetString();
        Assert.True(code is not null && StatusOfCode.TryGetValue(code, out var expected) && expected == status,
            $"code '{code}' does not belong to status {status}: {text}");

        var message = error.GetProperty("message").GetString();
        Assert.False(string.IsNullOrWhiteSpace(message), $"empty message: {text}");
        Assert.DoesNotContain("   at ", message, StringComparison.Ordinal);
        Assert.DoesNotContain("Exception", message, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", message, StringComparison.Ordinal);
        Assert.DoesNotContain(".cs:line", message, StringComparison.Ordinal);

        if (error.TryGetProperty("details", out var details))
        {
            Assert.Equal(JsonValueKind.Array, details.ValueKind);
            Assert.All(details.EnumerateArray(), d =>
            {
                Assert.Equal(JsonValueKind.Object, d.ValueKind);
                Assert.All(d.EnumerateObject(), p => Assert.Equal(JsonValueKind.String, p.Value.ValueKind));
            });
        }

        if (status is 429 or 503)
        {
            var retryAfter = response.Headers.RetryAfter?.Delta;
            Assert.True(retryAfter is { } delay && delay > TimeSpan.Zero, $"{status} without a positive Retry-After");
        }

        return error;
    }

    public static HttpContent Json(string json) => new StringContent(json, Encoding.UTF8, "application/json");

    /// <summary>Raw bytes with an optional content type exactly as given (null: no Content-Type header at all).</summary>
    public static HttpContent Raw(byte[] body, string? contentType = "application/json")
    {
        var content = new ByteArrayContent(body);
        if (contentType is not null)
        {
            content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        return content;
    }
}

/// <summary>A body of unknown length, so HttpClient sends it with <c>Transfer-Encoding: chunked</c>.</summary>
internal sealed class ChunkedContent : HttpContent
{
    private readonly byte[] _body;

    public ChunkedContent(byte[] body, string contentType = "application/json")
    {
        _body = body;
        Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        for (var offset = 0; offset < _body.Length; offset += 4096)
        {
            await stream.WriteAsync(_body.AsMemory(offset, Math.Min(4096, _body.Length - offset)));
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}

/// <summary>Every row of API.md's error table that the embedded gateway in auth mode <c>none</c> can produce.</summary>
public sealed class ErrorContractTests(PresenceServer server) : IClassFixture<PresenceServer>
{
    private const int MaxBody = 64 * 1024;

    [Theory]
    [InlineData("{not json")]
    [InlineData("{\"device_id\":\"ec-a\"")]
    [InlineData("[]")]
    [InlineData("\"ec-a\"")]
    [InlineData("null")]
    public async Task Body_that_is_not_a_json_object_is_422_invalid_body(string body)
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Json(body));

        await ErrorShape.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "INVALID_BODY");
    }

    [Theory]
    [InlineData("{\"device_id\":42}", "device_id")]
    [InlineData("{\"device_id\":null}", "device_id")]
    [InlineData("{\"device_id\":\"ec-b\",\"device_name\":true}", "device_name")]
    [InlineData("{\"device_id\":\"ec-b\",\"platform\":7}", "platform")]
    [InlineData("{\"device_id\":\"ec-b\",\"app_version\":[\"1\"]}", "app_version")]
    [InlineData("{\"device_id\":\"ec-b\",\"metrics\":[1]}", "metrics")]
    [InlineData("{\"device_id\":\"ec-b\",\"metrics\":{\"cpu_pct\":\"12\"}}", "metrics.cpu_pct")]
    [InlineData("{\"device_id\":\"ec-b\",\"containers\":{}}", "containers")]
    [InlineData("{\"device_id\":\"ec-b\",\"containers\":[\"web\"]}", "containers[0]")]
    [InlineData("{\"device_id\":\"ec-b\",\"containers\":[{\"name\":1}]}", "containers[0].name")]
    public async Task Field_of_the_wrong_type_is_422_naming_the_field(string body, string field)
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Json(body));

        await ErrorShape.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "INVALID_BODY", field, "wrong_type");
        await AssertNotRegisteredAsync("ec-b");
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("{\"device_name\":\"Rack 3\",\"platform\":\"linux\"}")]
    public async Task Missing_device_id_is_422_with_details(string body)
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Json(body));

        var error = await ErrorShape.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "INVALID_BODY", "device_id", "missing");
        Assert.Contains("device_id", error.GetProperty("message").GetString(), StringComparison.Ordinal);
    }

    public static TheoryData<string, string, string> OutOfRangeBodies => new()
    {
        { $"{{\"device_id\":\"{new string('d', 129)}\"}}", "device_id", "too_long" },
        { "{\"device_id\":\"\"}", "device_id", "empty" },
        { "{\"device_id\":\"ec c\"}", "device_id", "invalid_characters" },
        { "{\"device_id\":\"ec-c\",\"device_name\":\"   \"}", "device_name", "empty" },
        { $"{{\"device_id\":\"ec-c\",\"device_name\":\"{new string('n', 129)}\"}}", "device_name", "too_long" },
        { "{\"device_id\":\"ec-c\",\"platform\":\"Linux\"}", "platform", "invalid_characters" },
        { $"{{\"device_id\":\"ec-c\",\"platform\":\"{new string('p', 33)}\"}}", "platform", "too_long" },
        { $"{{\"device_id\":\"ec-c\",\"app_version\":\"{new string('1', 65)}\"}}", "app_version", "too_long" },
        { "{\"device_id\":\"ec-c\",\"metrics\":{\"cpu_pct\":1e400}}", "metrics.cpu_pct", "not_finite" },
        { $"{{\"device_id\":\"ec-c\",\"metrics\":{{{string.Join(',', Enumerable.Range(0, 33).Select(i => $"\"m{i}\":1"))}}}}}", "metrics", "too_many" },
        { "{\"device_id\":\"ec-c\",\"metrics\":{\"CPU\":1}}", "metrics", "invalid_characters" },
        { $"{{\"device_id\":\"ec-c\",\"containers\":[{string.Join(',', Enumerable.Range(0, 257).Select(i => $"{{\"name\":\"c{i}\"}}"))}]}}", "containers", "too_many" },
        { "{\"device_id\":\"ec-c\",\"containers\":[{\"image\":\"nginx\"}]}", "containers[0].name", "missing" },
        { $"{{\"device_id\":\"ec-c\",\"containers\":[{{\"name\":\"web\",\"image\":\"{new string('i', 257)}\"}}]}}", "containers[0].image", "too_long" },
    };

    [Theory]
    [MemberData(nameof(OutOfRangeBodies))]
    public async Task Out_of_range_value_is_422_with_the_field_and_problem(string body, string field, string problem)
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Json(body));

        await ErrorShape.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "INVALID_BODY", field, problem);
        await AssertNotRegisteredAsync("ec-c");
    }

    [Theory]
    [InlineData("/api/v1/events?since=abc", "since")]
    [InlineData("/api/v1/events?since=0-1", "since")]
    [InlineData("/api/v1/events?since=-5", "since")]
    [InlineData("/api/v1/events?since=1-x", "since")]
    [InlineData("/api/v1/events?limit=0", "limit")]
    [InlineData("/api/v1/events?limit=1001", "limit")]
    [InlineData("/api/v1/events?limit=abc", "limit")]
    [InlineData("/api/v1/events?device_id=a%20b", "device_id")]
    [InlineData("/api/v1/devices?limit=0", "limit")]
    [InlineData("/api/v1/devices?limit=1001", "limit")]
    [InlineData("/api/v1/devices?limit=abc", "limit")]
    [InlineData("/api/v1/devices?status=bogus", "status")]
    [InlineData("/api/v1/devices?status=ONLINE", "status")]
    [InlineData("/api/v1/devices?prefix=a%20b", "prefix")]
    [InlineData("/api/v1/devices?after=a%2Fb", "after")]
    [InlineData("/api/v1/devices/ec-q/sessions?limit=0", "limit")]
    [InlineData("/api/v1/devices/ec-q/sessions?limit=1001", "limit")]
    [InlineData("/api/v1/devices/ec-q/sessions?limit=abc", "limit")]
    public async Task Bad_query_parameter_is_400_invalid_query_naming_it(string path, string field)
    {
        using var response = await server.Http.GetAsync(path);

        await ErrorShape.AssertAsync(response, HttpStatusCode.BadRequest, "INVALID_QUERY", field);
    }

    public static TheoryData<string> BadPathIds => new() { "a%20b", new string('x', 129), "a%2Fb", "%C3%A9t%C3%A9", "a%3Bb" };

    [Theory]
    [MemberData(nameof(BadPathIds))]
    public async Task Bad_device_id_in_the_path_is_400_on_every_device_route(string id)
    {
        using var get = await server.Http.GetAsync($"/api/v1/devices/{id}");
        using var delete = await server.Http.DeleteAsync($"/api/v1/devices/{id}");
        using var sessions = await server.Http.GetAsync($"/api/v1/devices/{id}/sessions");
        using var command = await server.Http.PostAsync($"/api/v1/devices/{id}/commands", ErrorShape.Json("{\"name\":\"reboot\"}"));

        foreach (var response in new[] { get, delete, sessions, command })
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.BadRequest, "INVALID_QUERY", "device_id");
        }
    }

    [Fact]
    public async Task Unknown_device_is_404_on_every_device_route()
    {
        using var get = await server.Http.GetAsync("/api/v1/devices/ec-nobody");
        using var delete = await server.Http.DeleteAsync("/api/v1/devices/ec-nobody");
        using var sessions = await server.Http.GetAsync("/api/v1/devices/ec-nobody/sessions");
        using var command = await server.Http.PostAsync("/api/v1/devices/ec-nobody/commands", ErrorShape.Json("{\"name\":\"reboot\"}"));

        foreach (var response in new[] { get, delete, sessions, command })
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.NotFound, "NOT_FOUND");
        }
    }

    [Theory]
    [InlineData("GET", "/api/v1/nope")]
    [InlineData("GET", "/api/v2/devices")]
    [InlineData("POST", "/api/v1/heartbeats")]
    [InlineData("GET", "/")]
    [InlineData("GET", "/api/v1/devices/ec-a/unknown")]
    [InlineData("DELETE", "/api/v1/devices/ec-a/sessions/1")]
    public async Task Unknown_route_is_404_not_found_in_the_one_shape(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        using var response = await server.Http.SendAsync(request);

        await ErrorShape.AssertAsync(response, HttpStatusCode.NotFound, "NOT_FOUND");
    }

    [Theory]
    [InlineData("GET", "/api/v1/heartbeat", "POST")]
    [InlineData("PUT", "/api/connect", "POST")]
    [InlineData("POST", "/api/v1/stats", "GET")]
    [InlineData("DELETE", "/api/v1/devices", "GET")]
    [InlineData("PATCH", "/api/v1/devices/ec-a", "GET")]
    [InlineData("POST", "/api/v1/events", "GET")]
    public async Task Wrong_method_is_405_method_not_allowed_with_an_allow_header(string method, string path, string allowed)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = ErrorShape.Json("{}") };
        using var response = await server.Http.SendAsync(request);

        await ErrorShape.AssertAsync(response, HttpStatusCode.MethodNotAllowed, "METHOD_NOT_ALLOWED");
        Assert.Contains(allowed, response.Content.Headers.Allow);
    }

    [Fact]
    public async Task Command_to_a_device_without_a_device_channel_is_409_device_not_connected()
    {
        using (var heartbeat = await server.HeartbeatAsync("ec-offline-channel"))
        {
            Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
        }

        using var response = await server.Http.PostAsync("/api/v1/devices/ec-offline-channel/commands", ErrorShape.Json("{\"name\":\"reboot\",\"args\":{\"delay_s\":5}}"));

        await ErrorShape.AssertAsync(response, HttpStatusCode.Conflict, "DEVICE_NOT_CONNECTED");
    }

    [Fact]
    public async Task Cursor_from_another_epoch_is_410_cursor_expired()
    {
        var current = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;
        var foreign = current.StartsWith("1-", StringComparison.Ordinal) ? "2-5" : "1-5";

        using var response = await server.Http.GetAsync($"/api/v1/events?since={foreign}");

        await ErrorShape.AssertAsync(response, HttpStatusCode.Gone, "CURSOR_EXPIRED");
    }

    [Fact]
    public async Task Cursor_this_log_never_issued_is_400_invalid_query()
    {
        var current = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString()!;
        var epoch = current[..current.IndexOf('-', StringComparison.Ordinal)];

        using var response = await server.Http.GetAsync($"/api/v1/events?since={epoch}-999999999");

        await ErrorShape.AssertAsync(response, HttpStatusCode.BadRequest, "INVALID_QUERY", "since");
    }

    [Fact]
    public async Task Body_over_64_KiB_with_content_length_is_413()
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Raw(PaddedHeartbeat("ec-big", MaxBody + 1)));

        await ErrorShape.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge, "PAYLOAD_TOO_LARGE");
        await AssertNotRegisteredAsync("ec-big");
    }

    [Fact]
    public async Task Chunked_body_over_64_KiB_is_413()
    {
        using var response = await server.Http.PostAsync("/api/v1/heartbeat", new ChunkedContent(PaddedHeartbeat("ec-big-chunked", (MaxBody * 2) + 17)));

        await ErrorShape.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge, "PAYLOAD_TOO_LARGE");
        await AssertNotRegisteredAsync("ec-big-chunked");
    }

    [Fact]
    public async Task Command_body_over_64_KiB_is_413()
    {
        using (var heartbeat = await server.HeartbeatAsync("ec-big-command"))
        {
            Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
        }

        var body = Encoding.UTF8.GetBytes($"{{\"name\":\"run\",\"args\":{{\"script\":\"{new string('s', MaxBody)}\"}}}}");
        using var sized = await server.Http.PostAsync("/api/v1/devices/ec-big-command/commands", ErrorShape.Raw(body));
        using var chunked = await server.Http.PostAsync("/api/v1/devices/ec-big-command/commands", new ChunkedContent(body));

        await ErrorShape.AssertAsync(sized, HttpStatusCode.RequestEntityTooLarge, "PAYLOAD_TOO_LARGE");
        await ErrorShape.AssertAsync(chunked, HttpStatusCode.RequestEntityTooLarge, "PAYLOAD_TOO_LARGE");
    }

    [Fact]
    public async Task Body_of_exactly_64_KiB_is_accepted_both_sized_and_chunked()
    {
        using var sized = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Raw(PaddedHeartbeat("ec-edge", MaxBody)));
        using var chunked = await server.Http.PostAsync("/api/v1/heartbeat", new ChunkedContent(PaddedHeartbeat("ec-edge", MaxBody)));

        Assert.Equal(HttpStatusCode.OK, sized.StatusCode);
        Assert.Equal(HttpStatusCode.OK, chunked.StatusCode);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData(null)]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("text/json")]
    [InlineData("application/jsonx")]
    public async Task Body_that_is_not_application_json_is_415(string? contentType)
    {
        var body = Encoding.UTF8.GetBytes("{\"device_id\":\"ec-media\"}");

        using var heartbeat = await server.Http.PostAsync("/api/v1/heartbeat", ErrorShape.Raw(body, contentType));
        using var command = await server.Http.PostAsync("/api/v1/devices/ec-media/commands", ErrorShape.Raw("{\"name\":\"reboot\"}"u8.ToArray(), contentType));

        await ErrorShape.AssertAsync(heartbeat, HttpStatusCode.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE");
        await ErrorShape.AssertAsync(command, HttpStatusCode.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE");
        await AssertNotRegisteredAsync("ec-media");
    }

    [Theory]
    [InlineData("{\"args\":{}}", "name", "missing")]
    [InlineData("{\"name\":5}", "name", "wrong_type")]
    [InlineData("{\"name\":\"re boot\"}", "name", "invalid_characters")]
    [InlineData("{\"name\":\"reboot\",\"args\":[1]}", "args", "wrong_type")]
    public async Task Invalid_command_body_is_422_naming_the_field(string body, string field, string problem)
    {
        using (var heartbeat = await server.HeartbeatAsync("ec-command-body"))
        {
            Assert.Equal(HttpStatusCode.OK, heartbeat.StatusCode);
        }

        using var response = await server.Http.PostAsync("/api/v1/devices/ec-command-body/commands", ErrorShape.Json(body));

        await ErrorShape.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "INVALID_BODY", field, problem);
    }

    [Fact]
    public async Task Plain_get_of_a_websocket_endpoint_is_400_in_the_one_shape()
    {
        using var device = await server.Http.GetAsync("/ws/device");
        using var events = await server.Http.GetAsync("/ws/events");

        await ErrorShape.AssertAsync(device, HttpStatusCode.BadRequest, "INVALID_QUERY");
        await ErrorShape.AssertAsync(events, HttpStatusCode.BadRequest, "INVALID_QUERY");
    }

    /// <summary>A valid heartbeat padded with trailing whitespace to exactly <paramref name="size"/> bytes.</summary>
    internal static byte[] PaddedHeartbeat(string deviceId, int size)
    {
        var json = Encoding.UTF8.GetBytes($"{{\"device_id\":\"{deviceId}\"}}");
        var body = new byte[size];
        json.CopyTo(body, 0);
        body.AsSpan(json.Length).Fill((byte)' ');
        return body;
    }

    private async Task AssertNotRegisteredAsync(string deviceId)
    {
        using var response = await server.Http.GetAsync($"/api/v1/devices/{deviceId}");
        Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"a rejected request registered '{deviceId}': {await response.Content.ReadAsStringAsync()}");
    }
}

/// <summary>A gateway that allows five heartbeats per device and minute.</summary>
public sealed class RateLimitedServer() : PresenceServer(new() { ["Presence:RateLimit:HeartbeatsPerMinute"] = "5" });

public sealed class RateLimitContractTests(RateLimitedServer server) : IClassFixture<RateLimitedServer>
{
    [Fact]
    public async Task Heartbeat_over_the_rate_limit_is_429_with_retry_after_and_is_not_applied()
    {
        for (var i = 0; i < 5; i++)
        {
            using var accepted = await server.HeartbeatAsync("rl-busy", new { metrics = new { cpu_pct = i } });
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        var before = await server.GetJsonAsync("/api/v1/devices/rl-busy");
        var cursor = (await server.GetJsonAsync("/api/v1/events")).GetProperty("next_cursor").GetString();

        using var limited = await server.HeartbeatAsync("rl-busy", new { metrics = new { cpu_pct = 99.0 }, app_version = "9.9.9" });

        await ErrorShape.AssertAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED");
        var retryAfter = limited.Headers.RetryAfter!.Delta!.Value;
        Assert.InRange(retryAfter, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(60));

        var after = await server.GetJsonAsync("/api/v1/devices/rl-busy");
        Assert.Equal(5, before.GetProperty("version").GetInt64());
        Assert.Equal(before.GetProperty("version").GetInt64(), after.GetProperty("version").GetInt64());
        Assert.Equal(4, after.GetProperty("metrics").GetProperty("cpu_pct").GetDouble());
        Assert.Equal(JsonValueKind.Null, after.GetProperty("app_version").ValueKind);
        Assert.Empty((await server.GetJsonAsync($"/api/v1/events?since={cursor}")).GetProperty("events").EnumerateArray());
    }

    [Fact]
    public async Task Rate_limit_is_per_device_and_the_connect_alias_shares_it()
    {
        for (var i = 0; i < 5; i++)
        {
            using var accepted = await server.PostJsonAsync(i % 2 == 0 ? "/api/v1/heartbeat" : "/api/connect", new { device_id = "rl-alias" });
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        using var limited = await server.PostJsonAsync("/api/connect", new { device_id = "rl-alias" });
        using var other = await server.HeartbeatAsync("rl-other");

        await ErrorShape.AssertAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED");
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
    }

    [Fact]
    public async Task Heartbeats_are_accepted_again_once_retry_after_has_passed()
    {
        for (var i = 0; i < 5; i++)
        {
            using var accepted = await server.HeartbeatAsync("rl-wait");
            Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        }

        using var limited = await server.HeartbeatAsync("rl-wait");
        await ErrorShape.AssertAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED");

        await server.AdvanceAsync(limited.Headers.RetryAfter!.Delta!.Value);
        using var again = await server.HeartbeatAsync("rl-wait");

        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }
}
