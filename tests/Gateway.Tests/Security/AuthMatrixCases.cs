using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Presence.Gateway.Tests.Security;

/// <summary>The roles of the contract, ordered; <see cref="None"/> is a credential that is not an API key at all.</summary>
public enum MatrixRole
{
    None,
    Viewer,
    Operator,
    Admin,
}

/// <summary>How a credential travels: a bearer token, one extra header, and/or <c>?access_token=</c>.</summary>
public sealed record Presented(string? Bearer = null, string? HeaderName = null, string? HeaderValue = null, string? Query = null)
{
    public static readonly Presented Nothing = new();
}

/// <summary>
/// A portal endpoint as the contract lists it: the least role it needs and what an allowed caller gets. Paths hold
/// placeholders the fixture fills in for the caller's tenant: <c>{tenant}</c>, <c>{device}</c> (a provisioned device
/// of that tenant), <c>{fresh_device}</c> (provisioned just for this request) and <c>{fresh_key}</c> (a key id of that tenant).
/// </summary>
/// <param name="DefaultTenantOnly">Infrastructure views (the cluster): other tenants' keys get 403 whatever their role.</param>
public sealed record PortalEndpoint(string Method, string Path, MatrixRole Requires, HttpStatusCode Allowed, object? Body = null, bool DefaultTenantOnly = false);

/// <summary>
/// A credential presented to portal endpoints: the tenant it acts for, the role it grants on HTTP
/// (<see cref="MatrixRole.None"/>: 401), and whether <c>/ws/events</c> accepts it.
/// </summary>
public sealed record PortalCredential(string Tenant, MatrixRole Grants, bool AcceptedOnEventStream, Func<AuthMatrixFixture, Presented> Present);

/// <summary>
/// A credential presented to device endpoints (device-token mode): the heartbeat body's device, the HTTP status
/// expected, and the upgrade status of <c>/ws/device</c> (0: not part of the channel matrix).
/// </summary>
public sealed record DeviceCredential(string DeviceId, HttpStatusCode Http, HttpStatusCode Channel, Func<AuthMatrixFixture, Presented> Present);

public static class AuthMatrixCases
{
    public const string Acme = "acme";
    public const string Globex = "globex";
    public const string DefaultTenant = "default";

    /// <summary>An API key shaped like the real ones whose id and secret are unknown.</summary>
    public const string UnknownKey = "pk.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    public static readonly IReadOnlyDictionary<string, PortalEndpoint> Portal = new Dictionary<string, PortalEndpoint>
    {
        ["GET devices"] = new("GET", "/api/v1/devices", MatrixRole.Viewer, HttpStatusCode.OK),
        ["GET device"] = new("GET", "/api/v1/devices/{device}", MatrixRole.Viewer, HttpStatusCode.OK),
        ["GET sessions"] = new("GET", "/api/v1/devices/{device}/sessions", MatrixRole.Viewer, HttpStatusCode.OK),
        ["GET stats"] = new("GET", "/api/v1/stats", MatrixRole.Viewer, HttpStatusCode.OK),
        ["GET events"] = new("GET", "/api/v1/events", MatrixRole.Viewer, HttpStatusCode.OK),
        ["PUT device"] = new("PUT", "/api/v1/devices/{device}", MatrixRole.Operator, HttpStatusCode.OK, new { }),
        ["DELETE device"] = new("DELETE", "/api/v1/devices/{fresh_device}", MatrixRole.Operator, HttpStatusCode.NoContent),
        ["POST command"] = new("POST", "/api/v1/devices/{device}/commands", MatrixRole.Operator, HttpStatusCode.Conflict, new { name = "reboot" }),
        ["GET cluster"] = new("GET", "/api/v1/cluster", MatrixRole.Operator, HttpStatusCode.OK, DefaultTenantOnly: true),
        ["POST api-keys"] = new("POST", "/api/v1/tenants/{tenant}/api-keys", MatrixRole.Admin, HttpStatusCode.Created, new { role = "viewer", name = "matrix" }),
        ["DELETE api-key"] = new("DELETE", "/api/v1/api-keys/{fresh_key}", MatrixRole.Admin, HttpStatusCode.NoContent),
    };

    public static readonly IReadOnlyDictionary<string, PortalCredential> PortalCredentials = new Dictionary<string, PortalCredential>
    {
        ["no credential"] = new(Acme, MatrixRole.None, false, _ => Presented.Nothing),
        ["unknown key"] = new(Acme, MatrixRole.None, false, _ => new(Bearer: UnknownKey)),
        ["malformed bearer"] = new(Acme, MatrixRole.None, false, _ => new(Bearer: "not a key")),
        ["revoked key"] = new(Acme, MatrixRole.None, false, f => new(Bearer: f.RevokedKey)),
        ["device token"] = new(Acme, MatrixRole.None, false, f => new(Bearer: f.Token)),
        ["device token as X-Api-Key"] = new(Acme, MatrixRole.None, false, f => new(HeaderName: "X-Api-Key", HeaderValue: f.Token)),
        ["connect secret"] = new(Acme, MatrixRole.None, false, _ => new(HeaderName: "X-Connect-Secret", HeaderValue: SecureServer.ConnectSecret)),
        ["admin key as ?access_token="] = new(Acme, MatrixRole.None, true, f => new(Query: f.Key(Acme, MatrixRole.Admin))),
        ["viewer"] = new(Acme, MatrixRole.Viewer, true, f => new(Bearer: f.Key(Acme, MatrixRole.Viewer))),
        ["operator"] = new(Acme, MatrixRole.Operator, true, f => new(Bearer: f.Key(Acme, MatrixRole.Operator))),
        ["admin"] = new(Acme, MatrixRole.Admin, true, f => new(Bearer: f.Key(Acme, MatrixRole.Admin))),
        ["viewer as X-Api-Key"] = new(Acme, MatrixRole.Viewer, true, f => new(HeaderName: "X-Api-Key", HeaderValue: f.Key(Acme, MatrixRole.Viewer))),
        ["operator as X-Api-Key"] = new(Acme, MatrixRole.Operator, true, f => new(HeaderName: "X-Api-Key", HeaderValue: f.Key(Acme, MatrixRole.Operator))),
        ["admin as X-Api-Key"] = new(Acme, MatrixRole.Admin, true, f => new(HeaderName: "X-Api-Key", HeaderValue: f.Key(Acme, MatrixRole.Admin))),
        ["bootstrap"] = new(DefaultTenant, MatrixRole.Admin, true, _ => new(Bearer: SecureServer.AdminKey)),
    };

    public static readonly IReadOnlyDictionary<string, DeviceCredential> DeviceCredentials = new Dictionary<string, DeviceCredential>
    {
        ["no credential"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, _ => Presented.Nothing),
        ["garbage token"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, _ => new(Bearer: "v1.garbage.garbage")),
        ["tampered token"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, f => new(Bearer: Tamper(f.Token))),
        ["admin key"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, f => new(Bearer: f.Key(Acme, MatrixRole.Admin))),
        ["admin key as X-Api-Key"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized,
            f => new(HeaderName: "X-Api-Key", HeaderValue: f.Key(Acme, MatrixRole.Admin))),
        ["bootstrap key"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, _ => new(Bearer: SecureServer.AdminKey)),
        ["connect secret"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized,
            _ => new(HeaderName: "X-Connect-Secret", HeaderValue: SecureServer.ConnectSecret)),
        ["token as X-Api-Key"] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.Unauthorized, f => new(HeaderName: "X-Api-Key", HeaderValue: f.Token)),
        ["token"] = new("dev-a", HttpStatusCode.OK, HttpStatusCode.SwitchingProtocols, f => new(Bearer: f.Token)),
        ["token as ?access_token="] = new("dev-a", HttpStatusCode.Unauthorized, HttpStatusCode.SwitchingProtocols, f => new(Query: f.Token)),
        ["another device's token"] = new("dev-a", HttpStatusCode.Forbidden, 0, f => new(Bearer: f.OtherToken)),
        ["token of a deleted device"] = new("dev-gone", HttpStatusCode.Unauthorized, 0, f => new(Bearer: f.GoneToken)),
    };

    public static TheoryData<string, string> PortalMatrix()
    {
        var data = new TheoryData<string, string>();
        foreach (var endpoint in Portal.Keys)
        {
            foreach (var credential in PortalCredentials.Keys)
            {
                data.Add(endpoint, credential);
            }
        }

        return data;
    }

    public static TheoryData<string, string> DeviceMatrix()
    {
        var data = new TheoryData<string, string>();
        foreach (var path in new[] { "/api/v1/heartbeat", "/api/connect" })
        {
            foreach (var credential in DeviceCredentials.Keys)
            {
                data.Add(path, credential);
            }
        }

        return data;
    }

    public static TheoryData<string> ChannelMatrix()
    {
        var data = new TheoryData<string>();
        foreach (var (name, credential) in DeviceCredentials)
        {
            if (credential.Channel != 0)
            {
                data.Add(name);
            }
        }

        return data;
    }

    public static TheoryData<string> EventStreamMatrix() => new(PortalCredentials.Keys);

    /// <summary>The token with one character of its signature changed (a middle one: all six of its bits are data).</summary>
    public static string Tamper(string token)
    {
        var mac = token.LastIndexOf('.') + 1;
        var at = mac + ((token.Length - mac) / 2);
        return string.Concat(token.AsSpan(0, at), token[at] == 'A' ? "B" : "A", token.AsSpan(at + 1));
    }

    public static string WithQuery(string path, Presented presented) =>
        presented.Query is null ? path : $"{path}{(path.Contains('?', StringComparison.Ordinal) ? '&' : '?')}access_token={Uri.EscapeDataString(presented.Query)}";

    /// <summary>A request with the credential presented as given; the body is JSON when there is one.</summary>
    public static Task<HttpResponseMessage> SendAsync(HttpClient http, string method, string path, Presented presented, object? body = null,
        IEnumerable<(string Name, string Value)>? headers = null)
    {
        var request = new HttpRequestMessage(new HttpMethod(method), WithQuery(path, presented));
        if (presented.Bearer is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {presented.Bearer}");
        }

        if (presented.HeaderName is not null)
        {
            request.Headers.TryAddWithoutValidation(presented.HeaderName, presented.HeaderValue);
        }

        foreach (var (name, value) in headers ?? [])
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        if (body is not null)
        {
            request.Content = new StringContent(body as string ?? JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        }

        return http.SendAsync(request);
    }

    /// <summary>An HTTP client whose connections come from <paramref name="source"/> (another loopback address).</summary>
    public static HttpClient ClientFrom(IPAddress source, Uri baseAddress)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(source, 0));
                    await socket.ConnectAsync(IPAddress.Parse(context.DnsEndPoint.Host), context.DnsEndPoint.Port, cancellationToken);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
        return new HttpClient(handler) { BaseAddress = baseAddress };
    }

    /// <summary>
    /// Opens a WebSocket with the credential presented as given. Returns the open socket, or null with the HTTP
    /// status and headers of the refusal (a refusal is an HTTP answer before any upgrade).
    /// </summary>
    public static async Task<Upgrade> UpgradeAsync(PresenceServer server, string path, Presented presented)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (presented.Bearer is not null)
        {
            socket.Options.SetRequestHeader("Authorization", $"Bearer {presented.Bearer}");
        }

        if (presented.HeaderName is not null)
        {
            socket.Options.SetRequestHeader(presented.HeaderName, presented.HeaderValue);
        }

        var uri = new Uri(new UriBuilder(server.BaseAddress) { Scheme = "ws" }.Uri, WithQuery(path, presented));
        try
        {
            await socket.ConnectAsync(uri, TestSocket.Timeout());
        }
        catch (WebSocketException)
        {
            var refused = new Upgrade(null, socket.HttpStatusCode, socket.HttpResponseHeaders);
            socket.Dispose();
            return refused;
        }

        return new Upgrade(new TestSocket(socket), socket.HttpStatusCode, socket.HttpResponseHeaders);
    }

    /// <summary>Reads until the server closes; only <c>error</c> frames may come first. Returns the close status.</summary>
    public static async Task<WebSocketCloseStatus?> ClosedAsync(TestSocket socket)
    {
        try
        {
            while (await socket.ReceiveAsync() is { } message)
            {
                Assert.True(message.GetProperty("type").GetString() == "error", $"expected the socket to close, got {message}");
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail("the server left the socket open: no close within 20 s");
        }

        return socket.CloseStatus;
    }
}

/// <summary>The outcome of a WebSocket upgrade: the socket when accepted, else the HTTP refusal.</summary>
public sealed record Upgrade(TestSocket? Socket, HttpStatusCode Status, IReadOnlyDictionary<string, IEnumerable<string>>? Headers) : IAsyncDisposable
{
    public string? Header(string name) =>
        Headers?.FirstOrDefault(h => h.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value is { } values ? string.Join(",", values) : null;

    public async ValueTask DisposeAsync()
    {
        if (Socket is not null)
        {
            await Socket.DisposeAsync();
        }
    }
}

/// <summary>What every response must carry, and the one error shape.</summary>
public static class AuthAssert
{
    private static readonly (string Name, string? Value)[] Required =
    [
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Content-Security-Policy", null),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ];

    public static void SecurityHeaders(HttpResponseMessage response, string what) =>
        SecurityHeaders(name => response.Headers.TryGetValues(name, out var values) || (response.Content?.Headers.TryGetValues(name, out values) ?? false)
            ? string.Join(",", values!)
            : null, what);

    public static void SecurityHeaders(Upgrade upgrade, string what) => SecurityHeaders(upgrade.Header, what);

    private static void SecurityHeaders(Func<string, string?> header, string what)
    {
        foreach (var (name, value) in Required)
        {
            var actual = header(name);
            Assert.True(actual is { Length: > 0 }, $"{what}: no {name} header");
            if (value is not null)
            {
                Assert.True(string.Equals(value, actual, StringComparison.OrdinalIgnoreCase), $"{what}: {name} is '{actual}', expected '{value}'");
            }
        }
    }

    /// <summary>The response is the error <paramref name="code"/> with <paramref name="status"/>, in the one shape; returns the error object.</summary>
    public static async Task<JsonElement> ErrorAsync(HttpResponseMessage response, HttpStatusCode status, string code, string what)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{what}: expected {(int)status} {code}, got {(int)response.StatusCode} {text}");
        using var document = JsonDocument.Parse(text);
        var root = document.RootElement;
        Assert.Equal(JsonValueKind.Object, root.ValueKind);
        Assert.Equal(["error"], root.EnumerateObject().Select(p => p.Name));
        var error = root.GetProperty("error");
        Assert.Equal(code, error.GetProperty("code").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), $"{what}: empty message");
        if (error.TryGetProperty("details", out var details))
        {
            Assert.Equal(JsonValueKind.Array, details.ValueKind);
        }

        if (status == HttpStatusCode.Unauthorized)
        {
            Assert.Equal("Bearer", response.Headers.WwwAuthenticate.ToString());
        }

        if (status == HttpStatusCode.TooManyRequests)
        {
            Assert.NotNull(response.Headers.RetryAfter?.Delta);
        }

        return error.Clone();
    }

    /// <summary>The Retry-After of a 429, in seconds.</summary>
    public static int RetryAfterSeconds(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.TooManyRequests, response.StatusCode);
        var delta = response.Headers.RetryAfter?.Delta;
        Assert.True(delta.HasValue, "429 without a Retry-After in seconds");
        return (int)delta.Value.TotalSeconds;
    }
}

/// <summary>A secure server for the matrix: like <see cref="SecureServer"/>, with settings on top (a mode, a failure limit).</summary>
public sealed class AuthMatrixServer(Dictionary<string, string> settings) : SecureServer(settings)
{
    /// <summary>Device-token mode with a failure limit the matrix's deliberate failures never reach.</summary>
    public static AuthMatrixServer Lenient(string mode = "device-token") => new(new Dictionary<string, string>
    {
        ["Presence:Auth:Mode"] = mode,
        ["Presence:Auth:FailuresPerMinute"] = "100000",
    });
}

/// <summary>
/// One device-token server shared by a matrix: keys of every role for <c>acme</c> and <c>globex</c>, devices
/// <c>acme/dev-a</c>, <c>acme/dev-b</c>, <c>globex/dev-g</c>, <c>default/dev-d</c>, tokens for <c>dev-a</c> and
/// <c>dev-b</c>, a token of a device since deleted, and a revoked key. Time never moves on it.
/// </summary>
public sealed class AuthMatrixFixture : IAsyncLifetime
{
    private readonly Dictionary<(string, MatrixRole), string> _keys = [];

    public AuthMatrixServer Server { get; private set; } = null!;

    public string Token { get; private set; } = "";

    public string OtherToken { get; private set; } = "";

    public string GoneToken { get; private set; } = "";

    public string RevokedKey { get; private set; } = "";

    public string Key(string tenant, MatrixRole role) => tenant == AuthMatrixCases.DefaultTenant && role == MatrixRole.Admin ? SecureServer.AdminKey : _keys[(tenant, role)];

    public static string DeviceOf(string tenant) => tenant switch
    {
        AuthMatrixCases.Acme => "dev-a",
        AuthMatrixCases.Globex => "dev-g",
        _ => "dev-d",
    };

    public async Task InitializeAsync()
    {
        Server = AuthMatrixServer.Lenient();
        foreach (var tenant in new[] { AuthMatrixCases.Acme, AuthMatrixCases.Globex })
        {
            foreach (var role in new[] { MatrixRole.Viewer, MatrixRole.Operator, MatrixRole.Admin })
            {
                _keys[(tenant, role)] = (await Server.CreateKeyAsync(tenant, role.ToString().ToLowerInvariant())).ApiKey;
            }
        }

        var operatorKey = Key(AuthMatrixCases.Acme, MatrixRole.Operator);
        Token = await Server.DeviceTokenAsync("dev-a", operatorKey);
        OtherToken = await Server.DeviceTokenAsync("dev-b", operatorKey);
        GoneToken = await Server.DeviceTokenAsync("dev-gone", operatorKey);
        using (var deleted = await Server.SendAsync(HttpMethod.Delete, "/api/v1/devices/dev-gone", operatorKey))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        await Server.ProvisionAsync("dev-g", Key(AuthMatrixCases.Globex, MatrixRole.Operator));
        await Server.ProvisionAsync("dev-d", SecureServer.AdminKey);

        var (revokedId, revoked) = await Server.CreateKeyAsync(AuthMatrixCases.Acme, "admin");
        using (var revoke = await Server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{revokedId}", SecureServer.AdminKey))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        }

        RevokedKey = revoked;
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();

    /// <summary>Fills in a path's placeholders for <paramref name="tenant"/>, provisioning or creating what it needs.</summary>
    public async Task<string> ResolveAsync(string path, string tenant)
    {
        path = path.Replace("{tenant}", tenant, StringComparison.Ordinal).Replace("{device}", DeviceOf(tenant), StringComparison.Ordinal);
        if (path.Contains("{fresh_device}", StringComparison.Ordinal))
        {
            var device = NewId("fresh");
            await Server.ProvisionAsync(device, Key(tenant, MatrixRole.Admin));
            path = path.Replace("{fresh_device}", device, StringComparison.Ordinal);
        }

        if (path.Contains("{fresh_key}", StringComparison.Ordinal))
        {
            var (keyId, _) = await Server.CreateKeyAsync(tenant, "viewer");
            path = path.Replace("{fresh_key}", keyId, StringComparison.Ordinal);
        }

        return path;
    }

    public static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():N}";
}

/// <summary>A lenient server in another mode (<c>none</c> or <c>shared-secret</c>) shared by a class.</summary>
public abstract class AuthModeFixture(string mode) : IAsyncLifetime
{
    public AuthMatrixServer Server { get; private set; } = null!;

    public Task InitializeAsync()
    {
        Server = AuthMatrixServer.Lenient(mode);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await Server.DisposeAsync();
}

public sealed class AuthNoneFixture() : AuthModeFixture("none");

public sealed class AuthSharedSecretFixture() : AuthModeFixture("shared-secret");
