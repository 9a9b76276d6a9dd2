using System.Net;
using System.Text.Json;
using static Presence.Gateway.Tests.Security.AuthMatrixCases;

namespace Presence.Gateway.Tests.Security;

/// <summary>
/// Device-token mode: every portal endpoint against every way of presenting (or not presenting) a credential and
/// every role; every device endpoint against every credential; tenancy; who may manage which API keys.
/// </summary>
public sealed class AuthMatrixTests(AuthMatrixFixture fixture) : IClassFixture<AuthMatrixFixture>
{
    private readonly AuthMatrixServer _server = fixture.Server;

    private string Key(string tenant, MatrixRole role) => fixture.Key(tenant, role);

    [Theory]
    [MemberData(nameof(PortalMatrix), MemberType = typeof(AuthMatrixCases))]
    public async Task Portal_endpoint_answers_by_credential_and_role(string endpoint, string credential)
    {
        var e = Portal[endpoint];
        var c = PortalCredentials[credential];
        var path = await fixture.ResolveAsync(e.Path, c.Tenant);
        var what = $"{e.Method} {path} with {credential}";

        using var response = await SendAsync(_server.Http, e.Method, path, c.Present(fixture), e.Body);

        AuthAssert.SecurityHeaders(response, what);
        if (c.Grants == MatrixRole.None)
        {
            await AuthAssert.ErrorAsync(response, HttpStatusCode.Unauthorized, "UNAUTHORIZED", what);
        }
        else if (c.Grants < e.Requires || (e.DefaultTenantOnly && c.Tenant != DefaultTenant))
        {
            await AuthAssert.ErrorAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN", what);
        }
        else if (e.Allowed == HttpStatusCode.Conflict)
        {
            // Allowed, and past authorization: the device simply has no open channel.
            await AuthAssert.ErrorAsync(response, HttpStatusCode.Conflict, "DEVICE_NOT_CONNECTED", what);
        }
        else
        {
            Assert.True(response.StatusCode == e.Allowed, $"{what}: expected {(int)e.Allowed}, got {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }
    }

    [Theory]
    [MemberData(nameof(DeviceMatrix), MemberType = typeof(AuthMatrixCases))]
    public async Task Device_endpoint_answers_by_credential(string path, string credential)
    {
        var c = DeviceCredentials[credential];
        var what = $"POST {path} with {credential}";

        using var response = await SendAsync(_server.Http, "POST", path, c.Present(fixture), new { device_id = c.DeviceId });

        AuthAssert.SecurityHeaders(response, what);
        switch (c.Http)
        {
            case HttpStatusCode.OK:
                var text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.OK, $"{what}: {(int)response.StatusCode} {text}");
                Assert.Equal("online", JsonDocument.Parse(text).RootElement.GetProperty("device_status").GetString());
                break;
            case HttpStatusCode.Forbidden:
                await AuthAssert.ErrorAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN", what);
                break;
            default:
                await AuthAssert.ErrorAsync(response, HttpStatusCode.Unauthorized, "UNAUTHORIZED", what);
                break;
        }
    }

    [Theory]
    [MemberData(nameof(ChannelMatrix), MemberType = typeof(AuthMatrixCases))]
    public async Task Device_channel_upgrade_answers_by_credential(string credential)
    {
        var c = DeviceCredentials[credential];
        await using var upgrade = await UpgradeAsync(_server, "/ws/device", c.Present(fixture));

        Assert.True(upgrade.Status == c.Channel, $"/ws/device with {credential}: {(int)upgrade.Status}");
        if (upgrade.Socket is null)
        {
            AuthAssert.SecurityHeaders(upgrade, $"/ws/device refused for {credential}");
            Assert.Equal("Bearer", upgrade.Header("WWW-Authenticate"));
            return;
        }

        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = c.DeviceId });
        await upgrade.Socket.ExpectAsync("ack");
    }

    [Theory]
    [MemberData(nameof(EventStreamMatrix), MemberType = typeof(AuthMatrixCases))]
    public async Task Event_stream_upgrade_answers_by_credential(string credential)
    {
        var c = PortalCredentials[credential];
        await using var upgrade = await UpgradeAsync(_server, "/ws/events", c.Present(fixture));

        if (!c.AcceptedOnEventStream)
        {
            Assert.True(upgrade.Status == HttpStatusCode.Unauthorized, $"/ws/events with {credential}: {(int)upgrade.Status}");
            Assert.Null(upgrade.Socket);
            AuthAssert.SecurityHeaders(upgrade, $"/ws/events refused for {credential}");
            Assert.Equal("Bearer", upgrade.Header("WWW-Authenticate"));
            return;
        }

        Assert.True(upgrade.Socket is not null, $"/ws/events with {credential}: refused with {(int)upgrade.Status}");
        await upgrade.Socket.ExpectAsync("hello");
        var snapshot = await upgrade.Socket.ExpectAsync("snapshot");
        var own = FixtureDevice(c.Tenant);
        Assert.Contains(snapshot.GetProperty("devices").EnumerateArray(), d => d.GetProperty("device_id").GetString() == own);
    }

    private static string FixtureDevice(string tenant) => AuthMatrixFixture.DeviceOf(tenant);

    [Fact]
    public async Task A_token_for_another_device_is_refused_per_frame_and_the_channel_stays_open()
    {
        await using var upgrade = await UpgradeAsync(_server, "/ws/device", new(Bearer: fixture.OtherToken));
        Assert.NotNull(upgrade.Socket);

        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "dev-a" });
        var error = await upgrade.Socket.ExpectAsync("error");
        Assert.Equal("FORBIDDEN", error.GetProperty("error").GetProperty("code").GetString());

        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "dev-b" });
        await upgrade.Socket.ExpectAsync("ack");
    }

    [Fact]
    public async Task A_deleted_devices_token_neither_heartbeats_nor_registers_the_device_again()
    {
        using (var beat = await _server.BeatWithTokenAsync("dev-gone", fixture.GoneToken))
        {
            await AuthAssert.ErrorAsync(beat, HttpStatusCode.Unauthorized, "UNAUTHORIZED", "heartbeat of a deleted device");
        }

        await using (var upgrade = await UpgradeAsync(_server, "/ws/device", new(Bearer: fixture.GoneToken)))
        {
            // Refused at the upgrade, or at its first heartbeat: never acknowledged.
            if (upgrade.Socket is null)
            {
                Assert.Equal(HttpStatusCode.Unauthorized, upgrade.Status);
            }
            else
            {
                await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "dev-gone" });
                Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(upgrade.Socket));
            }
        }

        using var device = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices/dev-gone", Key(Acme, MatrixRole.Admin));
        await AuthAssert.ErrorAsync(device, HttpStatusCode.NotFound, "NOT_FOUND", "the deleted device");
    }

    [Fact]
    public async Task A_reprovisioned_device_does_not_accept_tokens_from_before_its_deletion()
    {
        var id = AuthMatrixFixture.NewId("reborn");
        var operatorKey = Key(Acme, MatrixRole.Operator);
        var old = await _server.DeviceTokenAsync(id, operatorKey);
        using (var deleted = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/devices/{id}", operatorKey))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        var fresh = await _server.DeviceTokenAsync(id, operatorKey);

        using (var stale = await _server.BeatWithTokenAsync(id, old))
        {
            await AuthAssert.ErrorAsync(stale, HttpStatusCode.Unauthorized, "UNAUTHORIZED", "token from before the deletion");
        }

        using var current = await _server.BeatWithTokenAsync(id, fresh);
        Assert.Equal(HttpStatusCode.OK, current.StatusCode);
    }

    [Fact]
    public async Task Another_tenants_device_is_not_found_and_indistinguishable_from_a_missing_one()
    {
        var id = AuthMatrixFixture.NewId("hidden");
        await _server.ProvisionAsync(id, Key(Acme, MatrixRole.Operator), new { labels = new { owner = "acme" } });
        var missing = AuthMatrixFixture.NewId("missing");
        var requests = new (string Method, string Path, string Key, object? Body)[]
        {
            ("GET", "/api/v1/devices/{0}", Key(Globex, MatrixRole.Viewer), null),
            ("GET", "/api/v1/devices/{0}/sessions", Key(Globex, MatrixRole.Viewer), null),
            ("POST", "/api/v1/devices/{0}/commands", Key(Globex, MatrixRole.Operator), new { name = "reboot" }),
            ("DELETE", "/api/v1/devices/{0}", Key(Globex, MatrixRole.Admin), null),
            ("GET", "/api/v1/devices/{0}", SecureServer.AdminKey, null),
            ("DELETE", "/api/v1/devices/{0}", SecureServer.AdminKey, null),
        };

        foreach (var (method, template, key, body) in requests)
        {
            var what = $"{method} {template} of another tenant";
            using var hidden = await SendAsync(_server.Http, method, string.Format(null, template, id), new(Bearer: key), body);
            var hiddenError = await AuthAssert.ErrorAsync(hidden, HttpStatusCode.NotFound, "NOT_FOUND", what);
            using var absent = await SendAsync(_server.Http, method, string.Format(null, template, missing), new(Bearer: key), body);
            var absentError = await AuthAssert.ErrorAsync(absent, HttpStatusCode.NotFound, "NOT_FOUND", $"{method} {template} of a missing device");
            Assert.Equal(absentError.GetRawText(), hiddenError.GetRawText());
        }

        foreach (var key in new[] { Key(Globex, MatrixRole.Viewer), SecureServer.AdminKey })
        {
            using var list = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices?prefix={id}", key);
            var devices = JsonDocument.Parse(await list.Content.ReadAsStringAsync()).RootElement.GetProperty("devices");
            Assert.Equal(0, devices.GetArrayLength());
        }

        using var own = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", Key(Acme, MatrixRole.Viewer));
        var device = JsonDocument.Parse(await own.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        Assert.Equal("acme", device.GetProperty("labels").GetProperty("owner").GetString());
    }

    [Fact]
    public async Task The_same_device_id_in_two_tenants_is_two_devices_and_one_tenants_rotation_leaves_the_other_alone()
    {
        var id = AuthMatrixFixture.NewId("twin");
        var acmeToken = await _server.DeviceTokenAsync(id, Key(Acme, MatrixRole.Operator));

        using (var created = await _server.SendAsync(HttpMethod.Put, $"/api/v1/devices/{id}", Key(Globex, MatrixRole.Operator), new { labels = new { owner = "globex" } }))
        {
            var text = await created.Content.ReadAsStringAsync();
            Assert.True(created.StatusCode == HttpStatusCode.Created, $"globex's {id}: {(int)created.StatusCode} {text}");
            Assert.StartsWith("globex.", JsonDocument.Parse(text).RootElement.GetProperty("secret").GetString(), StringComparison.Ordinal);
        }

        using (var rotated = await _server.SendAsync(HttpMethod.Put, $"/api/v1/devices/{id}?rotate_secret=true", Key(Globex, MatrixRole.Operator)))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        using (var beat = await _server.BeatWithTokenAsync(id, acmeToken))
        {
            Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
        }

        using var acme = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", Key(Acme, MatrixRole.Viewer));
        var acmeDevice = JsonDocument.Parse(await acme.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("online", acmeDevice.GetProperty("status").GetString());
        Assert.False(acmeDevice.GetProperty("labels").TryGetProperty("owner", out _));

        using var globex = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", Key(Globex, MatrixRole.Viewer));
        var globexDevice = JsonDocument.Parse(await globex.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("offline", globexDevice.GetProperty("status").GetString());
        Assert.Equal("globex", globexDevice.GetProperty("labels").GetProperty("owner").GetString());
    }

    [Fact]
    public async Task A_command_reaches_only_its_own_tenants_connected_device()
    {
        var id = AuthMatrixFixture.NewId("cmd");
        var token = await _server.DeviceTokenAsync(id, Key(Acme, MatrixRole.Operator));
        await using var upgrade = await UpgradeAsync(_server, "/ws/device", new(Bearer: token));
        Assert.NotNull(upgrade.Socket);
        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = id });
        await upgrade.Socket.ExpectAsync("ack");

        using (var foreign = await _server.SendAsync(HttpMethod.Post, $"/api/v1/devices/{id}/commands", Key(Globex, MatrixRole.Admin), new { name = "reboot" }))
        {
            await AuthAssert.ErrorAsync(foreign, HttpStatusCode.NotFound, "NOT_FOUND", "another tenant's command");
        }

        using (var bootstrap = await _server.SendAsync(HttpMethod.Post, $"/api/v1/devices/{id}/commands", SecureServer.AdminKey, new { name = "reboot" }))
        {
            await AuthAssert.ErrorAsync(bootstrap, HttpStatusCode.NotFound, "NOT_FOUND", "the default tenant's command");
        }

        using var own = await _server.SendAsync(HttpMethod.Post, $"/api/v1/devices/{id}/commands", Key(Acme, MatrixRole.Operator), new { name = "restart" });
        Assert.Equal(HttpStatusCode.Accepted, own.StatusCode);

        // The first message the device gets is its own tenant's command: nothing was delivered before it.
        var command = await upgrade.Socket.ExpectAsync("command");
        Assert.Equal("restart", command.GetProperty("name").GetString());
    }

    [Fact]
    public async Task Events_are_seen_only_by_their_own_tenant_over_http_and_websocket()
    {
        using var start = await _server.SendAsync(HttpMethod.Get, "/api/v1/events", Key(Globex, MatrixRole.Viewer));
        var cursor = JsonDocument.Parse(await start.Content.ReadAsStringAsync()).RootElement.GetProperty("next_cursor").GetString();

        await using var stream = await UpgradeAsync(_server, "/ws/events", new(Bearer: Key(Globex, MatrixRole.Viewer)));
        Assert.NotNull(stream.Socket);
        await stream.Socket.ExpectAsync("hello");
        var snapshot = await stream.Socket.ExpectAsync("snapshot");
        var seen = snapshot.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()).ToList();
        Assert.Contains("dev-g", seen);
        Assert.DoesNotContain("dev-a", seen);
        Assert.DoesNotContain("dev-d", seen);

        var acmeDevice = AuthMatrixFixture.NewId("acme-ev");
        var globexDevice = AuthMatrixFixture.NewId("globex-ev");
        await _server.ProvisionAsync(acmeDevice, Key(Acme, MatrixRole.Operator));
        await _server.ProvisionAsync(globexDevice, Key(Globex, MatrixRole.Operator));

        // Acme's event came first in the log: the first one globex's stream delivers must be its own.
        var live = (await stream.Socket.ExpectAsync("event")).GetProperty("event");
        Assert.Equal(globexDevice, live.GetProperty("deviceid").GetString());
        Assert.Equal("globex", live.GetProperty("tenantid").GetString());

        using var page = await _server.SendAsync(HttpMethod.Get, $"/api/v1/events?since={cursor}", Key(Globex, MatrixRole.Viewer));
        var events = JsonDocument.Parse(await page.Content.ReadAsStringAsync()).RootElement.GetProperty("events").EnumerateArray().ToList();
        Assert.Contains(events, e => e.GetProperty("deviceid").GetString() == globexDevice);
        Assert.All(events, e => Assert.Equal("globex", e.GetProperty("tenantid").GetString()));

        using var filtered = await _server.SendAsync(HttpMethod.Get, $"/api/v1/events?since={cursor}&device_id={acmeDevice}", Key(Globex, MatrixRole.Viewer));
        Assert.Equal(0, JsonDocument.Parse(await filtered.Content.ReadAsStringAsync()).RootElement.GetProperty("events").GetArrayLength());

        using var acme = await _server.SendAsync(HttpMethod.Get, $"/api/v1/events?since={cursor}&device_id={acmeDevice}", Key(Acme, MatrixRole.Viewer));
        var acmeEvents = JsonDocument.Parse(await acme.Content.ReadAsStringAsync()).RootElement.GetProperty("events");
        Assert.Contains(acmeEvents.EnumerateArray(), e => e.GetProperty("type").GetString() == "device.registered");
    }

    [Fact]
    public async Task Subscribing_to_another_tenants_device_ids_shows_nothing_of_them()
    {
        var globexDevice = AuthMatrixFixture.NewId("globex-sub");
        await _server.ProvisionAsync(globexDevice, Key(Globex, MatrixRole.Operator));
        await using var stream = await UpgradeAsync(_server, "/ws/events", new(Bearer: Key(Globex, MatrixRole.Viewer)));
        Assert.NotNull(stream.Socket);
        await stream.Socket.ExpectAsync("hello");
        await stream.Socket.ExpectAsync("snapshot");

        await stream.Socket.SendAsync(new { type = "subscribe", device_ids = new[] { "dev-a", "dev-b", globexDevice } });
        var snapshot = await stream.Socket.ExpectAsync("snapshot");
        Assert.Equal([globexDevice], snapshot.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()));

        using (var acmeBeat = await _server.BeatWithTokenAsync("dev-a", fixture.Token))
        {
            Assert.Equal(HttpStatusCode.OK, acmeBeat.StatusCode);
        }

        using (var relabel = await _server.SendAsync(HttpMethod.Put, $"/api/v1/devices/dev-b", Key(Acme, MatrixRole.Operator), new { labels = new { seen = "no" } }))
        {
            Assert.Equal(HttpStatusCode.OK, relabel.StatusCode);
        }

        using (var globexDelete = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/devices/{globexDevice}", Key(Globex, MatrixRole.Operator)))
        {
            Assert.Equal(HttpStatusCode.NoContent, globexDelete.StatusCode);
        }

        var live = (await stream.Socket.ExpectAsync("event")).GetProperty("event");
        Assert.Equal(globexDevice, live.GetProperty("deviceid").GetString());
        Assert.Equal("globex", live.GetProperty("tenantid").GetString());
    }

    [Fact]
    public async Task Device_authentication_fails_the_same_way_for_an_unknown_device_a_wrong_secret_and_another_tenants_secret()
    {
        var id = AuthMatrixFixture.NewId("authsame");
        var acmeSecret = await _server.ProvisionAsync(id, Key(Acme, MatrixRole.Operator));
        var globexSecret = await _server.ProvisionAsync(AuthMatrixFixture.NewId("authother"), Key(Globex, MatrixRole.Operator));
        var attempts = new (string DeviceId, string Secret)[]
        {
            (AuthMatrixFixture.NewId("nobody"), acmeSecret),
            (id, "acme.wrong"),
            (id, acmeSecret[..^1] + (acmeSecret[^1] == 'A' ? "B" : "A")),
            (id, globexSecret),
            (id, "no-tenant-prefix"),
            (id, SecureServer.AdminKey),
        };

        string? first = null;
        foreach (var (deviceId, secret) in attempts)
        {
            using var response = await SendAsync(_server.Http, "POST", "/api/v1/devices/auth", Presented.Nothing, new { device_id = deviceId, secret });
            var error = await AuthAssert.ErrorAsync(response, HttpStatusCode.Unauthorized, "UNAUTHORIZED", $"auth {deviceId}");
            first ??= error.GetRawText();
            Assert.Equal(first, error.GetRawText());
        }

        using var right = await SendAsync(_server.Http, "POST", "/api/v1/devices/auth", Presented.Nothing, new { device_id = id, secret = acmeSecret });
        var token = JsonDocument.Parse(await right.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(HttpStatusCode.OK, right.StatusCode);
        Assert.Equal("Bearer", token.GetProperty("token_type").GetString());
        Assert.Equal(id, token.GetProperty("device_id").GetString());
        var expires = DateTimeOffset.Parse(token.GetProperty("expires_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(_server.Time.GetUtcNow().AddMinutes(10), expires, TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Stats_count_only_the_callers_tenant()
    {
        var tenant = AuthMatrixFixture.NewId("t");
        var (_, key) = await _server.CreateKeyAsync(tenant, "operator");
        using (var empty = await _server.SendAsync(HttpMethod.Get, "/api/v1/stats", key))
        {
            Assert.Equal(0, JsonDocument.Parse(await empty.Content.ReadAsStringAsync()).RootElement.GetProperty("devices_total").GetInt64());
        }

        await _server.ProvisionAsync("one", key);
        await _server.ProvisionAsync("two", key);
        using var stats = await _server.SendAsync(HttpMethod.Get, "/api/v1/stats", key);
        var json = JsonDocument.Parse(await stats.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(2, json.GetProperty("devices_total").GetInt64());
        Assert.Equal(2, json.GetProperty("offline").GetInt64());
    }

    [Fact]
    public async Task A_tenant_admin_creates_keys_only_for_its_own_tenant()
    {
        var admin = Key(Acme, MatrixRole.Admin);
        using (var own = await _server.SendAsync(HttpMethod.Post, "/api/v1/tenants/acme/api-keys", admin, new { role = "admin", name = "acme's second admin" }))
        {
            Assert.Equal(HttpStatusCode.Created, own.StatusCode);
        }

        var newTenant = AuthMatrixFixture.NewId("newco");
        foreach (var tenant in new[] { Globex, AuthMatrixCases.DefaultTenant, newTenant })
        {
            using var other = await _server.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenant}/api-keys", admin, new { role = "viewer", name = "intruder" });
            await AuthAssert.ErrorAsync(other, HttpStatusCode.Forbidden, "FORBIDDEN", $"acme's admin creating a key for {tenant}");
        }
    }

    [Fact]
    public async Task A_tenant_admin_revokes_only_its_own_tenants_keys()
    {
        var admin = Key(Acme, MatrixRole.Admin);
        var (globexKeyId, globexKey) = await _server.CreateKeyAsync(Globex, "viewer");
        var (acmeKeyId, acmeKey) = await _server.CreateKeyAsync(Acme, "viewer");

        using (var foreign = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{globexKeyId}", admin))
        {
            await AuthAssert.ErrorAsync(foreign, HttpStatusCode.NotFound, "NOT_FOUND", "acme's admin revoking globex's key");
        }

        using (var stillWorks = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", globexKey))
        {
            Assert.Equal(HttpStatusCode.OK, stillWorks.StatusCode);
        }

        using (var own = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{acmeKeyId}", admin))
        {
            Assert.Equal(HttpStatusCode.NoContent, own.StatusCode);
        }

        using (var dead = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", acmeKey))
        {
            await AuthAssert.ErrorAsync(dead, HttpStatusCode.Unauthorized, "UNAUTHORIZED", "a revoked key");
        }

        using var again = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{acmeKeyId}", admin);
        await AuthAssert.ErrorAsync(again, HttpStatusCode.NotFound, "NOT_FOUND", "revoking a revoked key");
    }

    [Fact]
    public async Task An_admin_of_default_manages_every_tenants_keys_and_creates_tenants()
    {
        var (_, defaultAdmin) = await _server.CreateKeyAsync(AuthMatrixCases.DefaultTenant, "admin");
        var tenant = AuthMatrixFixture.NewId("made");
        var (keyId, key) = await _server.CreateKeyAsync(tenant, "operator", defaultAdmin);

        await _server.ProvisionAsync("made-device", key);
        using (var list = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", key))
        {
            var devices = JsonDocument.Parse(await list.Content.ReadAsStringAsync()).RootElement.GetProperty("devices");
            Assert.Equal(["made-device"], devices.EnumerateArray().Select(d => d.GetProperty("device_id").GetString()));
        }

        using (var revoked = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{keyId}", defaultAdmin))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        using var dead = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", key);
        await AuthAssert.ErrorAsync(dead, HttpStatusCode.Unauthorized, "UNAUTHORIZED", "a key revoked by default's admin");
    }

    [Fact]
    public async Task The_bootstrap_key_cannot_be_revoked_through_the_api()
    {
        var (_, defaultAdmin) = await _server.CreateKeyAsync(AuthMatrixCases.DefaultTenant, "admin");
        foreach (var key in new[] { SecureServer.AdminKey, defaultAdmin })
        {
            using var response = await _server.SendAsync(HttpMethod.Delete, "/api/v1/api-keys/bootstrap", key);
            await AuthAssert.ErrorAsync(response, HttpStatusCode.Conflict, "CONFLICT", "revoking bootstrap");
        }

        using var stillWorks = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", SecureServer.AdminKey);
        Assert.Equal(HttpStatusCode.OK, stillWorks.StatusCode);
    }

    [Theory]
    [InlineData("Acme")]
    [InlineData("a.b")]
    [InlineData("a%20b")]
    [InlineData("%C3%A9t%C3%A9")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public async Task A_bad_tenant_id_is_an_invalid_query(string tenant)
    {
        using var response = await _server.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenant}/api-keys", SecureServer.AdminKey, new { role = "viewer", name = "x" });
        await AuthAssert.ErrorAsync(response, HttpStatusCode.BadRequest, "INVALID_QUERY", $"tenant '{tenant}'");
    }

    [Fact]
    public async Task The_longest_tenant_id_is_accepted()
    {
        var tenant = new string('z', 64);
        var (_, key) = await _server.CreateKeyAsync(tenant, "viewer");
        using var response = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", key);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Theory]
    [InlineData("XYZ")]
    [InlineData("0123456789ABCDEF")]
    [InlineData("0123456789abcde")]
    [InlineData("0123456789abcdef0")]
    [InlineData("0123456789abcdeg")]
    public async Task A_bad_key_id_is_an_invalid_query(string keyId)
    {
        using var response = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{keyId}", SecureServer.AdminKey);
        await AuthAssert.ErrorAsync(response, HttpStatusCode.BadRequest, "INVALID_QUERY", $"key id '{keyId}'");
    }

    [Fact]
    public async Task An_unknown_well_formed_key_id_is_not_found()
    {
        using var response = await _server.SendAsync(HttpMethod.Delete, "/api/v1/api-keys/0000000000000000", SecureServer.AdminKey);
        await AuthAssert.ErrorAsync(response, HttpStatusCode.NotFound, "NOT_FOUND", "an unknown key id");
    }

    [Fact]
    public async Task A_viewer_cannot_rotate_a_secret_and_the_old_token_keeps_working()
    {
        var id = AuthMatrixFixture.NewId("norotate");
        var token = await _server.DeviceTokenAsync(id, Key(Acme, MatrixRole.Operator));
        using (var response = await _server.SendAsync(HttpMethod.Put, $"/api/v1/devices/{id}?rotate_secret=true", Key(Acme, MatrixRole.Viewer)))
        {
            await AuthAssert.ErrorAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN", "a viewer rotating a secret");
        }

        using var beat = await _server.BeatWithTokenAsync(id, token);
        Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
    }

    [Theory]
    [InlineData("GET", "/healthz", HttpStatusCode.OK)]
    [InlineData("GET", "/readyz", HttpStatusCode.OK)]
    [InlineData("GET", "/no/such/route", HttpStatusCode.NotFound)]
    [InlineData("PATCH", "/api/v1/devices/dev-a", HttpStatusCode.MethodNotAllowed)]
    [InlineData("POST", "/api/v1/devices/auth", HttpStatusCode.UnprocessableEntity)]
    public async Task Public_and_unrouted_responses_carry_the_security_headers(string method, string path, HttpStatusCode expected)
    {
        using var response = await SendAsync(_server.Http, method, path, Presented.Nothing, method == "POST" ? "{}" : null);
        Assert.Equal(expected, response.StatusCode);
        AuthAssert.SecurityHeaders(response, $"{method} {path}");
    }
}

/// <summary>A response produced by the error handler for a bug (500) still carries the security headers.</summary>
public sealed class AuthMatrixFaultTests
{
    [Fact]
    public async Task An_internal_error_carries_the_security_headers()
    {
        await using var server = new FaultyServer();
        using var response = await server.Http.GetAsync(new Uri("/test/bug", UriKind.Relative));
        await AuthAssert.ErrorAsync(response, HttpStatusCode.InternalServerError, "INTERNAL", "a bug");
        AuthAssert.SecurityHeaders(response, "500 INTERNAL");
    }
}

/// <summary>Mode <c>none</c>: everything is open and the caller is the admin of <c>default</c>; credentials are ignored.</summary>
public sealed class AuthMatrixNoneModeTests(AuthNoneFixture fixture) : IClassFixture<AuthNoneFixture>
{
    private readonly AuthMatrixServer _server = fixture.Server;

    public static TheoryData<string> Presentations() => new("nothing", "garbage bearer", "garbage X-Api-Key");

    private static Presented Present(string name) => name switch
    {
        "garbage bearer" => new(Bearer: "garbage"),
        "garbage X-Api-Key" => new(HeaderName: "X-Api-Key", HeaderValue: "garbage"),
        _ => Presented.Nothing,
    };

    [Theory]
    [MemberData(nameof(Presentations))]
    public async Task Every_endpoint_is_open(string presentation)
    {
        var presented = Present(presentation);
        var id = AuthMatrixFixture.NewId("open");
        using (var beat = await SendAsync(_server.Http, "POST", "/api/v1/heartbeat", presented, new { device_id = id }))
        {
            Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
            AuthAssert.SecurityHeaders(beat, "heartbeat in mode none");
        }

        using (var connect = await SendAsync(_server.Http, "POST", "/api/connect", presented, new { device_id = id }))
        {
            Assert.Equal(HttpStatusCode.OK, connect.StatusCode);
        }

        var requests = new (string Method, string Path, object? Body, HttpStatusCode Expected)[]
        {
            ("GET", "/api/v1/devices", null, HttpStatusCode.OK),
            ("GET", $"/api/v1/devices/{id}", null, HttpStatusCode.OK),
            ("GET", $"/api/v1/devices/{id}/sessions", null, HttpStatusCode.OK),
            ("GET", "/api/v1/stats", null, HttpStatusCode.OK),
            ("GET", "/api/v1/events", null, HttpStatusCode.OK),
            ("GET", "/api/v1/cluster", null, HttpStatusCode.OK),
            ("PUT", $"/api/v1/devices/{id}", new { }, HttpStatusCode.OK),
            ("POST", $"/api/v1/devices/{id}/commands", new { name = "reboot" }, HttpStatusCode.Conflict),
            ("POST", "/api/v1/tenants/acme/api-keys", new { role = "viewer", name = "x" }, HttpStatusCode.Created),
            ("DELETE", $"/api/v1/devices/{id}", null, HttpStatusCode.NoContent),
        };
        foreach (var (method, path, body, expected) in requests)
        {
            using var response = await SendAsync(_server.Http, method, path, presented, body);
            Assert.True(response.StatusCode == expected, $"{method} {path} with {presentation}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            AuthAssert.SecurityHeaders(response, $"{method} {path}");
        }
    }

    [Theory]
    [MemberData(nameof(Presentations))]
    public async Task Both_websockets_are_open(string presentation)
    {
        var id = AuthMatrixFixture.NewId("open-ws");
        await using var events = await UpgradeAsync(_server, "/ws/events", Present(presentation));
        Assert.NotNull(events.Socket);
        await events.Socket.ExpectAsync("hello");
        await events.Socket.ExpectAsync("snapshot");

        await using var device = await UpgradeAsync(_server, "/ws/device", Present(presentation));
        Assert.NotNull(device.Socket);
        await device.Socket.SendAsync(new { type = "heartbeat", device_id = id });
        await device.Socket.ExpectAsync("ack");

        var registered = (await events.Socket.ExpectAsync("event")).GetProperty("event");
        Assert.Equal(id, registered.GetProperty("deviceid").GetString());
        Assert.Equal("default", registered.GetProperty("tenantid").GetString());
    }

    [Fact]
    public async Task The_token_endpoint_does_not_exist()
    {
        using var response = await SendAsync(_server.Http, "POST", "/api/v1/devices/auth", Presented.Nothing, new { device_id = "x", secret = "default.x" });
        await AuthAssert.ErrorAsync(response, HttpStatusCode.NotFound, "NOT_FOUND", "devices/auth in mode none");
    }
}

/// <summary>Mode <c>shared-secret</c>: devices present <c>X-Connect-Secret</c> and register themselves in <c>default</c>; the portal needs keys.</summary>
public sealed class AuthMatrixSharedSecretTests(AuthSharedSecretFixture fixture) : IClassFixture<AuthSharedSecretFixture>
{
    private readonly AuthMatrixServer _server = fixture.Server;

    public static TheoryData<string, string> Refused()
    {
        var data = new TheoryData<string, string>();
        foreach (var path in new[] { "/api/v1/heartbeat", "/api/connect" })
        {
            foreach (var presentation in new[] { "nothing", "wrong secret", "empty secret", "secret as bearer", "secret as ?access_token=", "bootstrap key", "secret with a suffix" })
            {
                data.Add(path, presentation);
            }
        }

        return data;
    }

    private static Presented Present(string name) => name switch
    {
        "wrong secret" => new(HeaderName: "X-Connect-Secret", HeaderValue: "fleet-connect-secret-WRONG-6789"),
        "empty secret" => new(HeaderName: "X-Connect-Secret", HeaderValue: ""),
        "secret with a suffix" => new(HeaderName: "X-Connect-Secret", HeaderValue: SecureServer.ConnectSecret + "x"),
        "secret as bearer" => new(Bearer: SecureServer.ConnectSecret),
        "secret as ?access_token=" => new(Query: SecureServer.ConnectSecret),
        "bootstrap key" => new(Bearer: SecureServer.AdminKey),
        "secret" => new(HeaderName: "X-Connect-Secret", HeaderValue: SecureServer.ConnectSecret),
        _ => Presented.Nothing,
    };

    [Theory]
    [MemberData(nameof(Refused))]
    public async Task A_heartbeat_without_the_connect_secret_is_unauthorized_and_registers_nothing(string path, string presentation)
    {
        var id = AuthMatrixFixture.NewId("refused");
        using (var response = await SendAsync(_server.Http, "POST", path, Present(presentation), new { device_id = id }))
        {
            AuthAssert.SecurityHeaders(response, $"{path} with {presentation}");
            await AuthAssert.ErrorAsync(response, HttpStatusCode.Unauthorized, "UNAUTHORIZED", $"{path} with {presentation}");
        }

        using var device = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", SecureServer.AdminKey);
        Assert.Equal(HttpStatusCode.NotFound, device.StatusCode);
    }

    [Theory]
    [InlineData("/api/v1/heartbeat")]
    [InlineData("/api/connect")]
    public async Task A_heartbeat_with_the_connect_secret_registers_the_device_in_default(string path)
    {
        var id = AuthMatrixFixture.NewId("self");
        using (var response = await SendAsync(_server.Http, "POST", path, Present("secret"), new { device_id = id }))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var seen = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", SecureServer.AdminKey))
        {
            Assert.Equal(HttpStatusCode.OK, seen.StatusCode);
            Assert.Equal("online", JsonDocument.Parse(await seen.Content.ReadAsStringAsync()).RootElement.GetProperty("status").GetString());
        }

        var (_, acmeViewer) = await _server.CreateKeyAsync(Acme, "viewer");
        using var hidden = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", acmeViewer);
        await AuthAssert.ErrorAsync(hidden, HttpStatusCode.NotFound, "NOT_FOUND", "default's device seen by acme");
    }

    [Theory]
    [InlineData("nothing", HttpStatusCode.Unauthorized)]
    [InlineData("wrong secret", HttpStatusCode.Unauthorized)]
    [InlineData("secret as ?access_token=", HttpStatusCode.Unauthorized)]
    [InlineData("secret as bearer", HttpStatusCode.Unauthorized)]
    [InlineData("secret", HttpStatusCode.SwitchingProtocols)]
    public async Task The_device_channel_needs_the_connect_secret_header(string presentation, HttpStatusCode expected)
    {
        await using var upgrade = await UpgradeAsync(_server, "/ws/device", Present(presentation));
        Assert.True(upgrade.Status == expected, $"/ws/device with {presentation}: {(int)upgrade.Status}");
        if (upgrade.Socket is null)
        {
            AuthAssert.SecurityHeaders(upgrade, $"/ws/device with {presentation}");
            Assert.Equal("Bearer", upgrade.Header("WWW-Authenticate"));
            return;
        }

        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = AuthMatrixFixture.NewId("chan") });
        await upgrade.Socket.ExpectAsync("ack");
    }

    [Theory]
    [InlineData("nothing", HttpStatusCode.Unauthorized)]
    [InlineData("secret", HttpStatusCode.Unauthorized)]
    [InlineData("secret as bearer", HttpStatusCode.Unauthorized)]
    [InlineData("bootstrap key", HttpStatusCode.OK)]
    public async Task The_portal_needs_an_api_key(string presentation, HttpStatusCode expected)
    {
        using var response = await SendAsync(_server.Http, "GET", "/api/v1/devices", Present(presentation));
        Assert.Equal(expected, response.StatusCode);
        AuthAssert.SecurityHeaders(response, $"GET /api/v1/devices with {presentation}");
    }

    [Fact]
    public async Task Roles_apply_in_shared_secret_mode_too()
    {
        var (_, viewer) = await _server.CreateKeyAsync(AuthMatrixCases.DefaultTenant, "viewer");
        var id = AuthMatrixFixture.NewId("roles");
        using (var beat = await SendAsync(_server.Http, "POST", "/api/v1/heartbeat", Present("secret"), new { device_id = id }))
        {
            Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
        }

        using (var read = await _server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{id}", viewer))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
        }

        using var delete = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/devices/{id}", viewer);
        await AuthAssert.ErrorAsync(delete, HttpStatusCode.Forbidden, "FORBIDDEN", "a viewer deleting");
    }

    [Fact]
    public async Task The_token_endpoint_does_not_exist()
    {
        using var response = await SendAsync(_server.Http, "POST", "/api/v1/devices/auth", Present("secret"), new { device_id = "x", secret = "default.x" });
        await AuthAssert.ErrorAsync(response, HttpStatusCode.NotFound, "NOT_FOUND", "devices/auth in mode shared-secret");
    }
}

/// <summary>Credentials that stop working while in use: expiry (driven time), secret rotation, key revocation. One server per test.</summary>
public sealed class AuthMatrixRevocationTests : IAsyncLifetime
{
    private AuthMatrixServer _server = null!;

    public Task InitializeAsync()
    {
        _server = AuthMatrixServer.Lenient();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task An_expired_token_closes_its_channel_at_the_next_frame_and_is_refused_everywhere()
    {
        var token = await _server.DeviceTokenAsync("expiring", SecureServer.AdminKey);
        await using var upgrade = await UpgradeAsync(_server, "/ws/device", new(Bearer: token));
        Assert.NotNull(upgrade.Socket);
        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "expiring" });
        await upgrade.Socket.ExpectAsync("ack");

        await _server.AdvanceAsync(TimeSpan.FromMinutes(9));
        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "expiring" });
        await upgrade.Socket.ExpectAsync("ack");

        await _server.AdvanceAsync(TimeSpan.FromMinutes(1));
        await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "expiring" });
        Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(upgrade.Socket));

        await using (var again = await UpgradeAsync(_server, "/ws/device", new(Query: token)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, again.Status);
            Assert.Null(again.Socket);
        }

        using var connect = await SendAsync(_server.Http, "POST", "/api/connect", new(Bearer: token), new { device_id = "expiring" });
        await AuthAssert.ErrorAsync(connect, HttpStatusCode.Unauthorized, "UNAUTHORIZED", "an expired token on /api/connect");
    }

    [Fact]
    public async Task Rotating_a_secret_closes_the_devices_open_channel_with_4001()
    {
        var (_, operatorKey) = await _server.CreateKeyAsync(Acme, "operator");
        var secret = await _server.ProvisionAsync("rotated", operatorKey);
        var token = await _server.TokenAsync("rotated", secret);
        await using var channel = await UpgradeAsync(_server, "/ws/device", new(Query: token));
        var bystanderToken = await _server.DeviceTokenAsync("bystander", operatorKey);
        await using var bystander = await UpgradeAsync(_server, "/ws/device", new(Bearer: bystanderToken));
        foreach (var (upgrade, id) in new[] { (channel, "rotated"), (bystander, "bystander") })
        {
            Assert.NotNull(upgrade.Socket);
            await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = id });
            await upgrade.Socket.ExpectAsync("ack");
        }

        using (var rotated = await _server.SendAsync(HttpMethod.Put, "/api/v1/devices/rotated?rotate_secret=true", operatorKey))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(channel.Socket!));

        await bystander.Socket!.SendAsync(new { type = "heartbeat", device_id = "bystander" });
        await bystander.Socket.ExpectAsync("ack");

        await using var reopened = await UpgradeAsync(_server, "/ws/device", new(Bearer: token));
        if (reopened.Socket is not null)
        {
            // Accepted at the upgrade (the signature is valid), but its first heartbeat ends it.
            await reopened.Socket.SendAsync(new { type = "heartbeat", device_id = "rotated" });
            Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(reopened.Socket));
        }
        else
        {
            Assert.Equal(HttpStatusCode.Unauthorized, reopened.Status);
        }
    }

    [Fact]
    public async Task Rotating_a_secret_closes_every_open_channel_of_the_device_not_only_the_newest()
    {
        // E.g. a stolen token's channel opened before the device's own: rotation is how an operator ends it.
        var (_, operatorKey) = await _server.CreateKeyAsync(Acme, "operator");
        var secret = await _server.ProvisionAsync("twice", operatorKey);
        await using var older = await UpgradeAsync(_server, "/ws/device", new(Bearer: await _server.TokenAsync("twice", secret)));
        await using var newer = await UpgradeAsync(_server, "/ws/device", new(Bearer: await _server.TokenAsync("twice", secret)));
        foreach (var upgrade in new[] { older, newer })
        {
            Assert.NotNull(upgrade.Socket);
            await upgrade.Socket.SendAsync(new { type = "heartbeat", device_id = "twice" });
            await upgrade.Socket.ExpectAsync("ack");
        }

        using (var rotated = await _server.SendAsync(HttpMethod.Put, "/api/v1/devices/twice?rotate_secret=true", operatorKey))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(newer.Socket!));
        Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(older.Socket!));
    }

    [Fact]
    public async Task Revoking_a_key_closes_its_event_streams_with_4001_and_refuses_it_at_once()
    {
        var (keyId, key) = await _server.CreateKeyAsync(Acme, "viewer");
        var (_, otherKey) = await _server.CreateKeyAsync(Acme, "viewer");
        await using var revokedStream = await UpgradeAsync(_server, "/ws/events", new(Query: key));
        await using var otherStream = await UpgradeAsync(_server, "/ws/events", new(Bearer: otherKey));
        foreach (var stream in new[] { revokedStream, otherStream })
        {
            Assert.NotNull(stream.Socket);
            await stream.Socket.ExpectAsync("hello");
            await stream.Socket.ExpectAsync("snapshot");
        }

        using (var revoke = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{keyId}", SecureServer.AdminKey))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
        }

        Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)4001, await ClosedAsync(revokedStream.Socket!));

        using (var http = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", key))
        {
            await AuthAssert.ErrorAsync(http, HttpStatusCode.Unauthorized, "UNAUTHORIZED", "a revoked key");
        }

        await using (var again = await UpgradeAsync(_server, "/ws/events", new(Bearer: key)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, again.Status);
        }

        // The other key's stream is untouched and still live.
        await _server.ProvisionAsync("after-revoke", SecureServer.AdminKey);
        var (_, acmeOperator) = await _server.CreateKeyAsync(Acme, "operator");
        await _server.ProvisionAsync("acme-after-revoke", acmeOperator);
        var live = (await otherStream.Socket!.ExpectAsync("event")).GetProperty("event");
        Assert.Equal("acme-after-revoke", live.GetProperty("deviceid").GetString());
    }

    [Fact]
    public async Task A_failed_revocation_by_another_tenant_leaves_the_stream_open()
    {
        var (keyId, key) = await _server.CreateKeyAsync(Globex, "viewer");
        var (_, acmeAdmin) = await _server.CreateKeyAsync(Acme, "admin");
        await using var stream = await UpgradeAsync(_server, "/ws/events", new(Bearer: key));
        Assert.NotNull(stream.Socket);
        await stream.Socket.ExpectAsync("hello");
        await stream.Socket.ExpectAsync("snapshot");

        using (var revoke = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{keyId}", acmeAdmin))
        {
            Assert.Equal(HttpStatusCode.NotFound, revoke.StatusCode);
        }

        var (_, globexOperator) = await _server.CreateKeyAsync(Globex, "operator");
        await _server.ProvisionAsync("still-streaming", globexOperator);
        var live = (await stream.Socket.ExpectAsync("event")).GetProperty("event");
        Assert.Equal("still-streaming", live.GetProperty("deviceid").GetString());
    }
}

/// <summary>Brute-force limits (<c>Presence:Auth:FailuresPerMinute</c> = 10): per source address and per device, in driven one-minute windows.</summary>
public sealed class AuthMatrixLimitTests : IAsyncLifetime
{
    private static readonly IPAddress Second = IPAddress.Parse("127.0.0.2");
    private static readonly IPAddress Third = IPAddress.Parse("127.0.0.3");
    private SecureServer _server = null!;

    public Task InitializeAsync()
    {
        _server = new SecureServer();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    private static Task<HttpResponseMessage> AuthAsync(HttpClient http, string deviceId, string secret) =>
        SendAsync(http, "POST", "/api/v1/devices/auth", Presented.Nothing, new { device_id = deviceId, secret });

    [Fact]
    public async Task Failed_api_keys_lock_an_address_out_of_the_portal_until_the_window_ends()
    {
        for (var i = 0; i < 10; i++)
        {
            // A forged X-Forwarded-For does not make each attempt come from somewhere else.
            using var failed = await SendAsync(_server.Http, "GET", "/api/v1/devices", new(Bearer: $"pk.{i:x16}.wrong"), headers: [("X-Forwarded-For", $"203.0.113.{i}")]);
            await AuthAssert.ErrorAsync(failed, HttpStatusCode.Unauthorized, "UNAUTHORIZED", $"bad key {i}");
        }

        foreach (var path in new[] { "/api/v1/devices", "/api/v1/stats" })
        {
            using var limited = await SendAsync(_server.Http, "GET", path, new(Bearer: SecureServer.AdminKey), headers: [("X-Forwarded-For", "203.0.113.99")]);
            await AuthAssert.ErrorAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED", $"{path} with the right key, locked out");
            AuthAssert.SecurityHeaders(limited, "429");
            Assert.InRange(AuthAssert.RetryAfterSeconds(limited), 1, 60);
        }

        await using (var stream = await UpgradeAsync(_server, "/ws/events", new(Bearer: SecureServer.AdminKey)))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, stream.Status);
        }

        // Another address is not locked out.
        using (var other = ClientFrom(Second, _server.BaseAddress))
        using (var fine = await SendAsync(other, "GET", "/api/v1/devices", new(Bearer: SecureServer.AdminKey)))
        {
            Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
        }

        await _server.AdvanceAsync(TimeSpan.FromSeconds(59));
        using (var stillLimited = await SendAsync(_server.Http, "GET", "/api/v1/devices", new(Bearer: SecureServer.AdminKey)))
        {
            Assert.Equal(1, AuthAssert.RetryAfterSeconds(stillLimited));
        }

        await _server.AdvanceAsync(TimeSpan.FromSeconds(1));
        using var open = await SendAsync(_server.Http, "GET", "/api/v1/devices", new(Bearer: SecureServer.AdminKey));
        Assert.Equal(HttpStatusCode.OK, open.StatusCode);
    }

    [Fact]
    public async Task Failed_device_authentications_lock_out_their_source_address_even_for_a_correct_secret()
    {
        var secret = await _server.ProvisionAsync("victim", SecureServer.AdminKey);
        using var attacker = ClientFrom(Second, _server.BaseAddress);
        for (var i = 0; i < 10; i++)
        {
            // Each guess is for another device, so only the address reaches the limit.
            using var failed = await AuthAsync(attacker, $"guess-{i}", $"default.wrong-{i}");
            await AuthAssert.ErrorAsync(failed, HttpStatusCode.Unauthorized, "UNAUTHORIZED", $"guess {i}");
        }

        using (var limited = await AuthAsync(attacker, "victim", secret))
        {
            await AuthAssert.ErrorAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED", "the right secret from a locked-out address");
            Assert.InRange(AuthAssert.RetryAfterSeconds(limited), 1, 60);
        }

        using (var elsewhere = await AuthAsync(_server.Http, "victim", secret))
        {
            Assert.Equal(HttpStatusCode.OK, elsewhere.StatusCode);
        }

        await _server.AdvanceAsync(TimeSpan.FromMinutes(1));
        using var after = await AuthAsync(attacker, "victim", secret);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }

    [Fact]
    public async Task Failed_authentications_for_one_device_from_many_addresses_lock_that_device_until_the_window_ends()
    {
        var (_, operatorKey) = await _server.CreateKeyAsync(Acme, "operator");
        var secret = await _server.ProvisionAsync("target", operatorKey);
        var otherSecret = await _server.ProvisionAsync("other", operatorKey);
        using var second = ClientFrom(Second, _server.BaseAddress);
        using var third = ClientFrom(Third, _server.BaseAddress);
        for (var i = 0; i < 10; i++)
        {
            // Five from each address: neither address reaches the limit, the device does.
            using var failed = await AuthAsync(i % 2 == 0 ? second : third, "target", $"acme.wrong-{i}");
            await AuthAssert.ErrorAsync(failed, HttpStatusCode.Unauthorized, "UNAUTHORIZED", $"guess {i}");
        }

        using (var limited = await AuthAsync(_server.Http, "target", secret))
        {
            await AuthAssert.ErrorAsync(limited, HttpStatusCode.TooManyRequests, "RATE_LIMITED", "the right secret for a locked-out device");
            Assert.InRange(AuthAssert.RetryAfterSeconds(limited), 1, 60);
        }

        using (var otherDevice = await AuthAsync(second, "other", otherSecret))
        {
            Assert.Equal(HttpStatusCode.OK, otherDevice.StatusCode);
        }

        await _server.AdvanceAsync(TimeSpan.FromSeconds(30));
        using (var stillLimited = await AuthAsync(_server.Http, "target", secret))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, stillLimited.StatusCode);
        }

        // Refused attempts do not extend the window.
        await _server.AdvanceAsync(TimeSpan.FromSeconds(30));
        using var after = await AuthAsync(_server.Http, "target", secret);
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }
}
