using System.Net;
using System.Net.WebSockets;
using System.Text.Json;

namespace Presence.Gateway.Tests.Security;

/// <summary>
/// Two tenants, <c>acme</c> and <c>globex</c>, on one gateway in device-token mode, each with its own keys and devices,
/// some with the same device id in both (<c>dev-1</c>). A key or a device token of one tenant never reads, changes or
/// streams anything of the other: the other tenant's device is simply 404, same ids are independent devices.
/// Each test gets a fresh gateway so that counts (stats, lists, events) are exact and no test sees another's devices.
/// </summary>
public sealed class TenantIsolationTests : IAsyncLifetime
{
    private IsolationServer _server = null!;

    // acme: dev-1 ("Acme one"), dev-2, acme-only-1. globex: dev-1 ("Globex one"), globex-only-1.
    private Tenant _acme = null!;
    private Tenant _globex = null!;

    /// <summary>The end of the event log before anything was provisioned.</summary>
    private string _start = "";

    private static readonly string[] AcmeIds = ["acme-only-1", "dev-1", "dev-2"];
    private static readonly string[] GlobexIds = ["dev-1", "globex-only-1"];

    public async Task InitializeAsync()
    {
        _server = new IsolationServer();
        _start = (await GetAsync("/api/v1/events", SecureServer.AdminKey)).GetProperty("next_cursor").GetString()!;
        _acme = await Tenant.CreateAsync(_server, "acme");
        _globex = await Tenant.CreateAsync(_server, "globex");

        await _acme.ProvisionAsync("dev-1", new { device_name = "Acme one", labels = new Dictionary<string, string> { ["owner"] = "acme" } });
        await _acme.ProvisionAsync("dev-2", new { });
        await _acme.ProvisionAsync("acme-only-1", new { });
        await _globex.ProvisionAsync("dev-1", new { device_name = "Globex one", timeout_s = 600, labels = new Dictionary<string, string> { ["owner"] = "globex" } });
        await _globex.ProvisionAsync("globex-only-1", new { });
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task Reading_the_other_tenants_device_or_its_sessions_is_404_exactly_like_a_device_that_does_not_exist()
    {
        var unknown = await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/never-existed", _acme.Viewer);
        foreach (var key in new[] { _acme.Viewer, _acme.Operator, _acme.Admin })
        {
            Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/globex-only-1", key));
            Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/globex-only-1/sessions", key));
        }

        foreach (var key in new[] { _globex.Viewer, _globex.Operator, _globex.Admin })
        {
            Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/acme-only-1", key));
            Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/dev-2/sessions", key));
        }

        // The bootstrap admin is the admin of 'default': it sees neither tenant's devices.
        Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/dev-1", SecureServer.AdminKey));
        Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Get, "/api/v1/devices/globex-only-1/sessions", SecureServer.AdminKey));

        // The same id is each tenant's own device.
        var acmeDev1 = await GetAsync("/api/v1/devices/dev-1", _acme.Viewer);
        var globexDev1 = await GetAsync("/api/v1/devices/dev-1", _globex.Viewer);
        Assert.Equal("Acme one", acmeDev1.GetProperty("device_name").GetString());
        Assert.Equal("acme", acmeDev1.GetProperty("labels").GetProperty("owner").GetString());
        Assert.Equal("Globex one", globexDev1.GetProperty("device_name").GetString());
        Assert.Equal("globex", globexDev1.GetProperty("labels").GetProperty("owner").GetString());
        Assert.Equal(600, globexDev1.GetProperty("timeout_s").GetInt32());
        Assert.Equal(3, acmeDev1.GetProperty("timeout_s").GetInt32());
    }

    [Fact]
    public async Task Deleting_the_other_tenants_device_is_404_and_it_survives_and_deleting_a_same_id_device_removes_only_ones_own()
    {
        using (var response = await _server.SendAsync(HttpMethod.Delete, "/api/v1/devices/globex-only-1", _acme.Operator))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.NotFound, "NOT_FOUND");
        }

        using (var response = await _server.SendAsync(HttpMethod.Delete, "/api/v1/devices/globex-only-1", _acme.Admin))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.NotFound, "NOT_FOUND");
        }

        using (var response = await _server.SendAsync(HttpMethod.Delete, "/api/v1/devices/acme-only-1", _globex.Admin))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.NotFound, "NOT_FOUND");
        }

        Assert.Equal("globex-only-1", (await GetAsync("/api/v1/devices/globex-only-1", _globex.Viewer)).GetProperty("device_id").GetString());
        Assert.Equal("acme-only-1", (await GetAsync("/api/v1/devices/acme-only-1", _acme.Viewer)).GetProperty("device_id").GetString());
        await AssertBeatsAsync(_globex, "globex-only-1");

        // acme removes its own dev-1: globex's dev-1 stays, with its name, and its token still works.
        using (var removed = await _server.SendAsync(HttpMethod.Delete, "/api/v1/devices/dev-1", _acme.Operator))
        {
            Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
        }

        await AssertNotFoundAsync("/api/v1/devices/dev-1", _acme.Viewer);
        Assert.Equal("Globex one", (await GetAsync("/api/v1/devices/dev-1", _globex.Viewer)).GetProperty("device_name").GetString());
        await AssertBeatsAsync(_globex, "dev-1");
        using (var dead = await _server.BeatWithTokenAsync("dev-1", _acme.Tokens["dev-1"]))
        {
            await ErrorShape.AssertAsync(dead, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }
    }

    [Fact]
    public async Task Commands_to_the_other_tenants_device_are_404_even_while_it_is_connected_and_never_reach_its_channel()
    {
        await using var globexDevice = await _server.ConnectAsync($"/ws/device?access_token={_globex.Tokens["globex-only-1"]}");
        await globexDevice.SendAsync(new { type = "heartbeat", device_id = "globex-only-1" });
        await globexDevice.ExpectAsync("ack");
        await using var globexDev1 = await _server.ConnectAsync($"/ws/device?access_token={_globex.Tokens["dev-1"]}");
        await globexDev1.SendAsync(new { type = "heartbeat", device_id = "dev-1" });
        await globexDev1.ExpectAsync("ack");

        var unknown = await ErrorOfAsync(HttpMethod.Post, "/api/v1/devices/never-existed/commands", _acme.Operator, new { name = "reboot" });
        Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Post, "/api/v1/devices/globex-only-1/commands", _acme.Operator, new { name = "reboot" }));
        Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Post, "/api/v1/devices/globex-only-1/commands", _acme.Admin, new { name = "reboot" }));

        // acme's own dev-1 has no channel: 409, and globex's dev-1 channel does not get acme's command.
        using (var notConnected = await _server.SendAsync(HttpMethod.Post, "/api/v1/devices/dev-1/commands", _acme.Operator, new { name = "wipe" }))
        {
            await ErrorShape.AssertAsync(notConnected, HttpStatusCode.Conflict, "DEVICE_NOT_CONNECTED");
        }

        // globex's own commands arrive, and they are the first thing each globex channel receives: nothing of acme's came before.
        foreach (var (socket, id) in new[] { (globexDevice, "globex-only-1"), (globexDev1, "dev-1") })
        {
            using var sent = await _server.SendAsync(HttpMethod.Post, $"/api/v1/devices/{id}/commands", _globex.Operator, new { name = "ping" });
            Assert.Equal(HttpStatusCode.Accepted, sent.StatusCode);
            var commandId = JsonDocument.Parse(await sent.Content.ReadAsStringAsync()).RootElement.GetProperty("command_id").GetString();
            var command = await socket.ExpectAsync("command");
            Assert.Equal(commandId, command.GetProperty("command_id").GetString());
            Assert.Equal("ping", command.GetProperty("name").GetString());
        }
    }

    [Fact]
    public async Task Provisioning_an_id_the_other_tenant_uses_creates_an_independent_device_and_leaves_theirs_unchanged()
    {
        var before = await GetAsync("/api/v1/devices/globex-only-1", _globex.Viewer);

        string acmeSecret;
        using (var created = await _server.SendAsync(HttpMethod.Put, "/api/v1/devices/globex-only-1", _acme.Operator,
            new { device_name = "acme's copy", timeout_s = 60, labels = new Dictionary<string, string> { ["owner"] = "acme" } }))
        {
            var text = await created.Content.ReadAsStringAsync();
            Assert.True(created.StatusCode == HttpStatusCode.Created, $"{(int)created.StatusCode} {text}");
            acmeSecret = JsonDocument.Parse(text).RootElement.GetProperty("secret").GetString()!;
            Assert.StartsWith("acme.", acmeSecret, StringComparison.Ordinal);
        }

        // Same id, other tenant: update and rotate touch only acme's.
        using (var updated = await _server.SendAsync(HttpMethod.Put, "/api/v1/devices/dev-1", _acme.Operator, new { device_name = "Acme renamed" }))
        {
            Assert.Equal(HttpStatusCode.OK, updated.StatusCode);
        }

        using (var rotated = await _server.SendAsync(HttpMethod.Put, "/api/v1/devices/dev-1?rotate_secret=true", _acme.Operator))
        {
            Assert.Equal(HttpStatusCode.OK, rotated.StatusCode);
        }

        var after = await GetAsync("/api/v1/devices/globex-only-1", _globex.Viewer);
        Assert.Equal(before.ToString(), after.ToString());
        var acmeCopy = await GetAsync("/api/v1/devices/globex-only-1", _acme.Viewer);
        Assert.Equal("acme's copy", acmeCopy.GetProperty("device_name").GetString());
        Assert.Equal(60, acmeCopy.GetProperty("timeout_s").GetInt32());

        var globexDev1 = await GetAsync("/api/v1/devices/dev-1", _globex.Viewer);
        Assert.Equal("Globex one", globexDev1.GetProperty("device_name").GetString());
        Assert.Equal("globex", globexDev1.GetProperty("labels").GetProperty("owner").GetString());
        Assert.Equal("Acme renamed", (await GetAsync("/api/v1/devices/dev-1", _acme.Viewer)).GetProperty("device_name").GetString());

        // globex's secrets and tokens still work; acme's rotated dev-1 token does not; acme's copy has its own secret.
        await AssertBeatsAsync(_globex, "dev-1");
        await AssertBeatsAsync(_globex, "globex-only-1");
        Assert.False(string.IsNullOrEmpty(await _server.TokenAsync("dev-1", _globex.Secrets["dev-1"])));
        Assert.False(string.IsNullOrEmpty(await _server.TokenAsync("globex-only-1", _globex.Secrets["globex-only-1"])));
        using (var revoked = await _server.BeatWithTokenAsync("dev-1", _acme.Tokens["dev-1"]))
        {
            await ErrorShape.AssertAsync(revoked, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }

        using (var own = await _server.BeatWithTokenAsync("globex-only-1", await _server.TokenAsync("globex-only-1", acmeSecret)))
        {
            Assert.Equal(HttpStatusCode.OK, own.StatusCode);
        }

        Assert.Equal("online", (await GetAsync("/api/v1/devices/globex-only-1", _acme.Viewer)).GetProperty("status").GetString());
        Assert.Equal(1, (await GetAsync("/api/v1/devices/globex-only-1", _globex.Viewer)).GetProperty("version").GetInt64() - before.GetProperty("version").GetInt64());
    }

    [Fact]
    public async Task Device_lists_and_prefix_searches_show_only_ones_own_devices()
    {
        await AssertBeatsAsync(_globex, "globex-only-1");
        await AssertBeatsAsync(_acme, "dev-2");

        Assert.Equal(AcmeIds, await ListAsync("/api/v1/devices", _acme.Viewer));
        Assert.Equal(GlobexIds, await ListAsync("/api/v1/devices", _globex.Viewer));
        Assert.Empty(await ListAsync("/api/v1/devices", SecureServer.AdminKey));
        Assert.Empty(await ListAsync("/api/v1/devices?prefix=globex", _acme.Viewer));
        Assert.Empty(await ListAsync("/api/v1/devices?prefix=acme", _globex.Viewer));
        Assert.Equal(["dev-1", "dev-2"], await ListAsync("/api/v1/devices?prefix=dev", _acme.Viewer));
        Assert.Equal(["dev-1"], await ListAsync("/api/v1/devices?prefix=dev", _globex.Viewer));
        Assert.Equal(["dev-2"], await ListAsync("/api/v1/devices?status=online", _acme.Viewer));
        Assert.Equal(["globex-only-1"], await ListAsync("/api/v1/devices?status=online", _globex.Viewer));
        Assert.Equal(["dev-1"], await ListAsync("/api/v1/devices?status=offline", _globex.Viewer));
        Assert.Equal(["dev-2"], await ListAsync("/api/v1/devices?after=dev-1", _acme.Viewer));
        Assert.Equal(["globex-only-1"], await ListAsync("/api/v1/devices?after=dev-1", _globex.Viewer));

        // Paging one at a time never crosses into the other tenant.
        var paged = new List<string>();
        string? after = null;
        do
        {
            var page = await GetAsync($"/api/v1/devices?limit=1{(after is null ? "" : $"&after={after}")}", _acme.Viewer);
            paged.AddRange(page.GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()!));
            after = page.GetProperty("next").GetString();
        }
        while (after is not null);

        Assert.Equal(AcmeIds, paged);
        var names = (await GetAsync("/api/v1/devices?prefix=dev-1", _acme.Viewer)).GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_name").GetString());
        Assert.Equal(["Acme one"], names);
    }

    [Fact]
    public async Task Stats_count_only_ones_own_devices_and_heartbeats()
    {
        for (var i = 0; i < 3; i++)
        {
            await AssertBeatsAsync(_acme, "dev-1");
        }

        await AssertBeatsAsync(_globex, "dev-1");
        await AssertBeatsAsync(_globex, "globex-only-1");

        var acme = await GetAsync("/api/v1/stats", _acme.Viewer);
        Assert.Equal(3, acme.GetProperty("devices_total").GetInt64());
        Assert.Equal(1, acme.GetProperty("online").GetInt64());
        Assert.Equal(2, acme.GetProperty("offline").GetInt64());
        Assert.Equal(3, acme.GetProperty("new_last_24h").GetInt64());
        Assert.Equal(3, acme.GetProperty("heartbeats_last_minute").GetInt64());

        var globex = await GetAsync("/api/v1/stats", _globex.Viewer);
        Assert.Equal(2, globex.GetProperty("devices_total").GetInt64());
        Assert.Equal(2, globex.GetProperty("online").GetInt64());
        Assert.Equal(0, globex.GetProperty("offline").GetInt64());
        Assert.Equal(2, globex.GetProperty("new_last_24h").GetInt64());
        Assert.Equal(2, globex.GetProperty("heartbeats_last_minute").GetInt64());

        var other = await GetAsync("/api/v1/stats", SecureServer.AdminKey);
        Assert.Equal(0, other.GetProperty("devices_total").GetInt64());
        Assert.Equal(0, other.GetProperty("heartbeats_last_minute").GetInt64());
    }

    [Fact]
    public async Task Event_pages_hold_only_ones_own_tenants_events_also_when_filtered_by_the_other_tenants_device_id()
    {
        await AssertBeatsAsync(_acme, "dev-1");
        await AssertBeatsAsync(_globex, "dev-1");
        await AssertBeatsAsync(_globex, "globex-only-1");

        // acme: three registrations and dev-1 online; globex: two registrations and two online.
        var acme = await EventsAsync(_acme.Viewer, "");
        Assert.All(acme, e => AssertTenant("acme", e));
        Assert.Equal(
            ["acme-only-1:device.registered", "dev-1:device.registered", "dev-1:device.status", "dev-2:device.registered"],
            acme.Select(e => $"{e.GetProperty("deviceid").GetString()}:{e.GetProperty("type").GetString()}").Order(StringComparer.Ordinal));
        var globex = await EventsAsync(_globex.Viewer, "");
        Assert.All(globex, e => AssertTenant("globex", e));
        Assert.Equal(4, globex.Count);

        // One event per page: every page is still only the caller's.
        Assert.Equal(acme.Select(e => e.GetProperty("id").GetString()), (await EventsAsync(_acme.Viewer, "", limit: 1)).Select(e => e.GetProperty("id").GetString()));
        Assert.Equal(globex.Select(e => e.GetProperty("id").GetString()), (await EventsAsync(_globex.Viewer, "", limit: 1)).Select(e => e.GetProperty("id").GetString()));

        Assert.Empty(await EventsAsync(_acme.Viewer, "&device_id=globex-only-1"));
        Assert.Empty(await EventsAsync(_globex.Viewer, "&device_id=acme-only-1"));
        Assert.Empty(await EventsAsync(SecureServer.AdminKey, "&device_id=dev-1"));
        var acmeDev1 = await EventsAsync(_acme.Viewer, "&device_id=dev-1");
        Assert.Equal(2, acmeDev1.Count);
        Assert.All(acmeDev1, e => AssertTenant("acme", e));
        var globexDev1 = await EventsAsync(_globex.Viewer, "&device_id=dev-1");
        Assert.Equal(2, globexDev1.Count);
        Assert.All(globexDev1, e => AssertTenant("globex", e));
    }

    [Fact]
    public async Task Event_streams_show_only_ones_own_devices_and_events_and_subscribing_to_the_other_tenants_ids_yields_nothing_of_theirs()
    {
        await using var acme = await _server.ConnectAsync($"/ws/events?access_token={_acme.Viewer}");
        await using var globex = await _server.ConnectAsync($"/ws/events?access_token={_globex.Viewer}");
        await acme.ExpectAsync("hello");
        await globex.ExpectAsync("hello");
        var acmeSnapshot = (await acme.ExpectAsync("snapshot")).GetProperty("devices").EnumerateArray().ToList();
        var globexSnapshot = (await globex.ExpectAsync("snapshot")).GetProperty("devices").EnumerateArray().ToList();
        Assert.Equal(AcmeIds, acmeSnapshot.Select(d => d.GetProperty("device_id").GetString()));
        Assert.Equal(GlobexIds, globexSnapshot.Select(d => d.GetProperty("device_id").GetString()));
        Assert.Equal("Acme one", acmeSnapshot.Single(d => d.GetProperty("device_id").GetString() == "dev-1").GetProperty("device_name").GetString());
        Assert.Equal("Globex one", globexSnapshot.Single(d => d.GetProperty("device_id").GetString() == "dev-1").GetProperty("device_name").GetString());

        // globex is busy, then acme does one thing: acme's stream shows that thing first, globex's shows its own three.
        await AssertBeatsAsync(_globex, "dev-1");
        await AssertBeatsAsync(_globex, "globex-only-1");
        await _globex.ProvisionAsync("globex-new", new { });
        await AssertBeatsAsync(_acme, "dev-2");
        var marker = await NextEventAsync(acme);
        AssertTenant("acme", marker);
        Assert.Equal("dev-2", marker.GetProperty("deviceid").GetString());
        var globexEvents = new[] { await NextEventAsync(globex), await NextEventAsync(globex), await NextEventAsync(globex) };
        Assert.All(globexEvents, e => AssertTenant("globex", e));
        Assert.Equal(["dev-1", "globex-only-1", "globex-new"], globexEvents.Select(e => e.GetProperty("deviceid").GetString()));

        // Subscribing to globex's ids (one of them also an acme id) gives acme's dev-1 only.
        await acme.SendAsync(new { type = "subscribe", device_ids = new[] { "globex-only-1", "globex-new", "dev-1" } });
        var narrowed = (await acme.ExpectAsync("snapshot")).GetProperty("devices").EnumerateArray().ToList();
        var only = Assert.Single(narrowed);
        Assert.Equal("dev-1", only.GetProperty("device_id").GetString());
        Assert.Equal("Acme one", only.GetProperty("device_name").GetString());

        // Everything goes offline (both tenants), globex's subscribed ids change; then acme's dev-1 comes online.
        await _server.AdvanceAsync(TimeSpan.FromSeconds(4));
        await AssertBeatsAsync(_globex, "globex-only-1");
        await AssertBeatsAsync(_globex, "dev-1");
        await _globex.ProvisionAsync("dev-3", new { });
        await AssertBeatsAsync(_acme, "dev-1");
        var subscribed = await NextEventAsync(acme);
        AssertTenant("acme", subscribed);
        Assert.Equal("dev-1", subscribed.GetProperty("deviceid").GetString());
        Assert.Equal("online", subscribed.GetProperty("data").GetProperty("status").GetString());

        // globex's stream: its own events up to its marker, none of acme's.
        await _globex.ProvisionAsync("globex-marker", new { });
        var seen = new List<JsonElement>();
        while (seen.Count == 0 || seen[^1].GetProperty("deviceid").GetString() != "globex-marker")
        {
            seen.Add(await NextEventAsync(globex));
        }

        Assert.All(seen, e => AssertTenant("globex", e));
        Assert.DoesNotContain(seen, e => e.GetProperty("deviceid").GetString() is "dev-2" or "acme-only-1");
    }

    [Fact]
    public async Task Same_id_heartbeats_of_one_tenant_never_change_the_other_tenants_device()
    {
        var before = await GetAsync("/api/v1/devices/dev-1", _globex.Viewer);
        Assert.Equal("offline", before.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, before.GetProperty("last_seen_at").ValueKind);

        for (var i = 0; i < 5; i++)
        {
            await AssertBeatsAsync(_acme, "dev-1", new { app_version = $"9.{i}", metrics = new { cpu_pct = 99.0 } });
            await _server.AdvanceAsync(TimeSpan.FromSeconds(1));
        }

        await using (var channel = await _server.ConnectAsync($"/ws/device?access_token={_acme.Tokens["dev-1"]}"))
        {
            await channel.SendAsync(new { type = "heartbeat", device_id = "dev-1", app_version = "9.9" });
            await channel.ExpectAsync("ack");
        }

        var acmeDev1 = await GetAsync("/api/v1/devices/dev-1", _acme.Viewer);
        Assert.Equal("online", acmeDev1.GetProperty("status").GetString());
        Assert.Equal("9.9", acmeDev1.GetProperty("app_version").GetString());
        Assert.Equal(before.ToString(), (await GetAsync("/api/v1/devices/dev-1", _globex.Viewer)).ToString());
        using (var sessions = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices/dev-1/sessions", _globex.Viewer))
        {
            var list = JsonDocument.Parse(await sessions.Content.ReadAsStringAsync()).RootElement.GetProperty("sessions");
            Assert.Empty(list.EnumerateArray());
        }

        // And the other way round: globex's dev-1 comes online, acme's is not touched by it.
        var acmeBefore = await GetAsync("/api/v1/devices/dev-1", _acme.Viewer);
        await AssertBeatsAsync(_globex, "dev-1", new { app_version = "1.0" });
        Assert.Equal(acmeBefore.ToString(), (await GetAsync("/api/v1/devices/dev-1", _acme.Viewer)).ToString());
        var globexAfter = await GetAsync("/api/v1/devices/dev-1", _globex.Viewer);
        Assert.Equal("online", globexAfter.GetProperty("status").GetString());
        Assert.Equal("1.0", globexAfter.GetProperty("app_version").GetString());
        Assert.False(globexAfter.GetProperty("metrics").TryGetProperty("cpu_pct", out _));
    }

    [Fact]
    public async Task A_device_token_is_bound_to_its_tenant_and_device_a_heartbeat_for_any_other_device_id_is_403()
    {
        var globexBefore = await GetAsync("/api/v1/devices/globex-only-1", _globex.Viewer);
        var dev2Before = await GetAsync("/api/v1/devices/dev-2", _acme.Viewer);
        foreach (var target in new[] { "globex-only-1", "dev-2", "never-existed" })
        {
            using var response = await _server.BeatWithTokenAsync(target, _acme.Tokens["dev-1"]);
            await ErrorShape.AssertAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN");
        }

        using (var response = await _server.BeatWithTokenAsync("acme-only-1", _globex.Tokens["dev-1"]))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN");
        }

        await using (var channel = await _server.ConnectAsync($"/ws/device?access_token={_acme.Tokens["dev-1"]}"))
        {
            await channel.SendAsync(new { type = "heartbeat", device_id = "globex-only-1" });
            var error = (await channel.ExpectAsync("error")).GetProperty("error");
            Assert.Equal("FORBIDDEN", error.GetProperty("code").GetString());
            await channel.SendAsync(new { type = "heartbeat", device_id = "dev-1" });
            await channel.ExpectAsync("ack");
        }

        Assert.Equal(globexBefore.ToString(), (await GetAsync("/api/v1/devices/globex-only-1", _globex.Viewer)).ToString());
        Assert.Equal(dev2Before.ToString(), (await GetAsync("/api/v1/devices/dev-2", _acme.Viewer)).ToString());
        await AssertNotFoundAsync("/api/v1/devices/never-existed", _acme.Viewer);
        await AssertNotFoundAsync("/api/v1/devices/acme-only-1", _globex.Viewer);
    }

    [Fact]
    public async Task A_secret_of_one_tenant_never_authenticates_a_device_of_the_other()
    {
        var acmeRandom = _acme.Secrets["dev-1"]["acme.".Length..];
        foreach (var (deviceId, secret) in new[]
        {
            ("globex-only-1", _acme.Secrets["dev-1"]),
            ("globex-only-1", _acme.Secrets["acme-only-1"]),
            ("acme-only-1", _globex.Secrets["globex-only-1"]),
            ("dev-1", "globex." + acmeRandom),
            ("dev-1", "default." + acmeRandom),
            ("dev-1", acmeRandom),
            ("dev-1", _acme.Secrets["dev-2"]),
        })
        {
            using var response = await _server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = deviceId, secret });
            await ErrorShape.AssertAsync(response, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }

        // The same id in both tenants: each secret gets a token for its own tenant's device only.
        var globexToken = await _server.TokenAsync("dev-1", _globex.Secrets["dev-1"]);
        var acmeBefore = await GetAsync("/api/v1/devices/dev-1", _acme.Viewer);
        using (var beat = await _server.BeatWithTokenAsync("dev-1", globexToken))
        {
            Assert.Equal(HttpStatusCode.OK, beat.StatusCode);
        }

        Assert.Equal("online", (await GetAsync("/api/v1/devices/dev-1", _globex.Viewer)).GetProperty("status").GetString());
        Assert.Equal(acmeBefore.ToString(), (await GetAsync("/api/v1/devices/dev-1", _acme.Viewer)).ToString());
    }

    [Fact]
    public async Task An_admin_of_one_tenant_cannot_create_or_revoke_keys_of_another()
    {
        using (var response = await _server.SendAsync(HttpMethod.Post, "/api/v1/tenants/globex/api-keys", _acme.Admin, new { role = "admin", name = "takeover" }))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN");
        }

        using (var response = await _server.SendAsync(HttpMethod.Post, "/api/v1/tenants/default/api-keys", _acme.Admin, new { role = "admin", name = "takeover" }))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN");
        }

        using (var response = await _server.SendAsync(HttpMethod.Post, "/api/v1/tenants/acme/api-keys", _globex.Admin, new { role = "viewer", name = "peek" }))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.Forbidden, "FORBIDDEN");
        }

        var unknown = await ErrorOfAsync(HttpMethod.Delete, "/api/v1/api-keys/0123456789abcdef", _acme.Admin);
        foreach (var keyId in new[] { _globex.ViewerId, _globex.AdminId })
        {
            Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Delete, $"/api/v1/api-keys/{keyId}", _acme.Admin));
        }

        Assert.Equal(unknown, await ErrorOfAsync(HttpMethod.Delete, $"/api/v1/api-keys/{_acme.ViewerId}", _globex.Admin));
        using (var response = await _server.SendAsync(HttpMethod.Delete, "/api/v1/api-keys/bootstrap", _acme.Admin))
        {
            await ErrorShape.AssertAsync(response, HttpStatusCode.Conflict, "CONFLICT");
        }

        // Nothing was revoked: every key still works.
        foreach (var key in new[] { _globex.Viewer, _globex.Admin, _acme.Viewer, SecureServer.AdminKey })
        {
            using var still = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", key);
            Assert.Equal(HttpStatusCode.OK, still.StatusCode);
        }

        // The admin of 'default' manages every tenant's keys.
        using (var revoked = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{_globex.ViewerId}", SecureServer.AdminKey))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        using (var gone = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", _globex.Viewer))
        {
            await ErrorShape.AssertAsync(gone, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }
    }

    [Fact]
    public async Task A_revoked_key_is_refused_at_once_and_its_open_event_stream_closes_with_4001_while_other_keys_work()
    {
        await using var stream = await _server.ConnectAsync($"/ws/events?access_token={_acme.Viewer}");
        await stream.ExpectAsync("hello");
        await stream.ExpectAsync("snapshot");
        await using var globexStream = await _server.ConnectAsync($"/ws/events?access_token={_globex.Viewer}");
        await globexStream.ExpectAsync("hello");
        await globexStream.ExpectAsync("snapshot");

        using (var revoked = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{_acme.ViewerId}", _acme.Admin))
        {
            Assert.Equal(HttpStatusCode.NoContent, revoked.StatusCode);
        }

        using (var bearer = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", _acme.Viewer))
        {
            await ErrorShape.AssertAsync(bearer, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }

        using (var header = await _server.SendAsync(HttpMethod.Get, "/api/v1/stats", headers: [("X-Api-Key", _acme.Viewer)]))
        {
            await ErrorShape.AssertAsync(header, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }

        using (var query = await _server.SendAsync(HttpMethod.Get, $"/ws/events?access_token={_acme.Viewer}"))
        {
            await ErrorShape.AssertAsync(query, HttpStatusCode.Unauthorized, "UNAUTHORIZED");
        }

        Assert.Null(await stream.ReceiveAsync());
        Assert.Equal((WebSocketCloseStatus)4001, stream.CloseStatus);

        // Revoking again: it is gone. Other keys, of both tenants, are untouched; globex's stream goes on.
        using (var again = await _server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{_acme.ViewerId}", _acme.Admin))
        {
            await ErrorShape.AssertAsync(again, HttpStatusCode.NotFound, "NOT_FOUND");
        }

        foreach (var key in new[] { _acme.Operator, _acme.Admin, _globex.Viewer })
        {
            using var still = await _server.SendAsync(HttpMethod.Get, "/api/v1/devices", key);
            Assert.Equal(HttpStatusCode.OK, still.StatusCode);
        }

        await AssertBeatsAsync(_globex, "globex-only-1");
        var next = await NextEventAsync(globexStream);
        Assert.Equal("globex-only-1", next.GetProperty("deviceid").GetString());
    }

    private static void AssertTenant(string tenant, JsonElement e)
    {
        Assert.Equal(tenant, e.GetProperty("tenantid").GetString());
        Assert.StartsWith($"/tenants/{tenant}/devices/", e.GetProperty("source").GetString(), StringComparison.Ordinal);
    }

    /// <summary>The next event on an event stream (skipping nothing: anything else is a failure).</summary>
    private static async Task<JsonElement> NextEventAsync(TestSocket socket) => (await socket.ExpectAsync("event")).GetProperty("event");

    private async Task AssertBeatsAsync(Tenant tenant, string deviceId, object? extra = null)
    {
        var body = JsonSerializer.Deserialize<Dictionary<string, object?>>(JsonSerializer.Serialize(extra ?? new { }))!;
        body["device_id"] = deviceId;
        using var response = await _server.SendAsync(HttpMethod.Post, "/api/v1/heartbeat", tenant.Tokens[deviceId], body);
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{tenant.Name}/{deviceId}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private async Task<JsonElement> GetAsync(string path, string key)
    {
        using var response = await _server.SendAsync(HttpMethod.Get, path, key);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }

    private async Task AssertNotFoundAsync(string path, string key)
    {
        using var response = await _server.SendAsync(HttpMethod.Get, path, key);
        await ErrorShape.AssertAsync(response, HttpStatusCode.NotFound, "NOT_FOUND");
    }

    /// <summary>The whole error response (status and body), to compare "not yours" with "does not exist".</summary>
    private async Task<string> ErrorOfAsync(HttpMethod method, string path, string key, object? body = null)
    {
        using var response = await _server.SendAsync(method, path, key, body);
        var text = await response.Content.ReadAsStringAsync();
        ErrorShape.AssertShape(response, text);
        Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{method} {path}: expected 404, got {(int)response.StatusCode} {text}");
        return $"{(int)response.StatusCode} {text}";
    }

    private async Task<List<string>> ListAsync(string path, string key) =>
        [.. (await GetAsync(path, key)).GetProperty("devices").EnumerateArray().Select(d => d.GetProperty("device_id").GetString()!)];

    /// <summary>Every event since the start, page by page.</summary>
    private async Task<List<JsonElement>> EventsAsync(string key, string filter, int limit = 500)
    {
        var events = new List<JsonElement>();
        var cursor = _start;
        while (true)
        {
            var page = await GetAsync($"/api/v1/events?since={cursor}&limit={limit}{filter}", key);
            var batch = page.GetProperty("events").EnumerateArray().ToList();
            if (batch.Count == 0)
            {
                return events;
            }

            Assert.True(batch.Count <= limit);
            events.AddRange(batch);
            cursor = page.GetProperty("next_cursor").GetString()!;
        }
    }

    /// <summary>
    /// SecureServer with a failure limit high enough that this class's deliberate 401s never turn into 429s (the limiter
    /// has its own tests); everything else as in <see cref="SecureServer"/>.
    /// </summary>
    private sealed class IsolationServer() : SecureServer(new Dictionary<string, string> { ["Presence:Auth:FailuresPerMinute"] = "100000" });

    /// <summary>A tenant's keys (viewer, operator, admin; made with the bootstrap key) and its devices' secrets and tokens.</summary>
    private sealed class Tenant(SecureServer server, string name)
    {
        public string Name { get; } = name;

        public string Viewer { get; private set; } = "";

        public string ViewerId { get; private set; } = "";

        public string Operator { get; private set; } = "";

        public string Admin { get; private set; } = "";

        public string AdminId { get; private set; } = "";

        public Dictionary<string, string> Secrets { get; } = [];

        public Dictionary<string, string> Tokens { get; } = [];

        public static async Task<Tenant> CreateAsync(SecureServer server, string name)
        {
            var tenant = new Tenant(server, name);
            (tenant.ViewerId, tenant.Viewer) = await server.CreateKeyAsync(name, "viewer");
            (_, tenant.Operator) = await server.CreateKeyAsync(name, "operator");
            (tenant.AdminId, tenant.Admin) = await server.CreateKeyAsync(name, "admin");
            return tenant;
        }

        public async Task ProvisionAsync(string deviceId, object body)
        {
            var secret = await server.ProvisionAsync(deviceId, Operator, body);
            Assert.StartsWith($"{Name}.", secret, StringComparison.Ordinal);
            Secrets[deviceId] = secret;
            Tokens[deviceId] = await server.TokenAsync(deviceId, secret);
        }
    }
}
