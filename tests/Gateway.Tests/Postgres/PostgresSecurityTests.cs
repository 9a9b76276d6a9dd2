using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Npgsql;
using Presence.Gateway.Tests.Security;
using Presence.Testing;

namespace Presence.Gateway.Tests.Postgres;

/// <summary>
/// Credentials on PostgreSQL storage in device-token mode: provisioned devices, their secrets and tenant API keys
/// outlive a gateway restart (tokens too, with the same signing key), rotations and revocations stay in force after
/// one, removing and provisioning a device again revokes its old tokens, and the database never holds a secret or
/// an API key in clear.
/// </summary>
public sealed class PostgresSecurityTests(PostgresFixture postgres) : IClassFixture<PostgresFixture>
{
    private static readonly TimeSpan Downtime = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Devices_secrets_tokens_and_api_keys_survive_a_restart_and_revoked_keys_stay_revoked()
    {
        var server = Start(await postgres.Server.CreateDatabaseAsync());
        try
        {
            var (_, operatorKey) = await server.CreateKeyAsync("acme", "operator");
            var (revokedId, revokedKey) = await server.CreateKeyAsync("acme", "viewer");
            var secret = await server.ProvisionAsync("agent-1", operatorKey, new { device_name = "Rack 3", labels = new { site = "berlin" } });
            var token = await server.TokenAsync("agent-1", secret);
            await server.AssertBeatAsync("agent-1", token, HttpStatusCode.OK);
            using (var revoke = await server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{revokedId}", SecureServer.AdminKey))
            {
                Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
            }

            var device = await server.GetDeviceAsync("agent-1", operatorKey);

            server = await server.RestartAsync(Downtime);

            // The token (same signing key, not expired) and the secret still work; so does the key.
            await server.AssertBeatAsync("agent-1", token, HttpStatusCode.OK);
            await server.AssertBeatAsync("agent-1", await server.TokenAsync("agent-1", secret), HttpStatusCode.OK);
            var after = await server.GetDeviceAsync("agent-1", operatorKey);
            Assert.Equal(("Rack 3", "berlin", "online"), (after.GetProperty("device_name").GetString(), after.GetProperty("labels").GetProperty("site").GetString(), after.GetProperty("status").GetString()));
            Assert.Equal(device.GetProperty("first_seen_at").GetString(), after.GetProperty("first_seen_at").GetString());
            Assert.False(after.TryGetProperty("secret", out _));

            using (var revoked = await server.SendAsync(HttpMethod.Get, "/api/v1/devices/agent-1", revokedKey))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, revoked.StatusCode);
            }

            using (var again = await server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{revokedId}", SecureServer.AdminKey))
            {
                Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
            }

            // Keys created after the restart work, and a wrong secret is still refused.
            var (_, viewerKey) = await server.CreateKeyAsync("acme", "viewer");
            Assert.Equal("agent-1", (await server.GetDeviceAsync("agent-1", viewerKey)).GetProperty("device_id").GetString());
            using (var wrong = await server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = "agent-1", secret = secret[..^2] + "xx" }))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
            }
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_provisioned_device_that_never_connected_survives_a_restart_and_connects_after_it()
    {
        var server = Start(await postgres.Server.CreateDatabaseAsync());
        try
        {
            var secret = await server.ProvisionAsync("agent-new", SecureServer.AdminKey);
            var token = await server.TokenAsync("agent-new", secret);

            server = await server.RestartAsync(Downtime);

            var device = await server.GetDeviceAsync("agent-new", SecureServer.AdminKey);
            Assert.Equal(("offline", JsonValueKind.Null), (device.GetProperty("status").GetString(), device.GetProperty("last_seen_at").ValueKind));
            await server.AssertBeatAsync("agent-new", token, HttpStatusCode.OK);
            Assert.Equal("online", (await server.GetDeviceAsync("agent-new", SecureServer.AdminKey)).GetProperty("status").GetString());
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_rotation_stays_in_force_after_a_restart()
    {
        var server = Start(await postgres.Server.CreateDatabaseAsync());
        try
        {
            var (_, operatorKey) = await server.CreateKeyAsync("acme", "operator");
            var oldSecret = await server.ProvisionAsync("agent-rot", operatorKey);
            var oldToken = await server.TokenAsync("agent-rot", oldSecret);
            await server.AssertBeatAsync("agent-rot", oldToken, HttpStatusCode.OK);
            var newSecret = await server.RotateAsync("agent-rot", operatorKey);
            var newToken = await server.TokenAsync("agent-rot", newSecret);
            await server.AssertBeatAsync("agent-rot", oldToken, HttpStatusCode.Unauthorized);

            server = await server.RestartAsync(Downtime);

            await server.AssertBeatAsync("agent-rot", oldToken, HttpStatusCode.Unauthorized);
            using (var old = await server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = "agent-rot", secret = oldSecret }))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
            }

            await server.AssertBeatAsync("agent-rot", newToken, HttpStatusCode.OK);
            await server.AssertBeatAsync("agent-rot", await server.TokenAsync("agent-rot", newSecret), HttpStatusCode.OK);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_rotation_while_the_device_is_online_survives_write_behind_and_a_restart()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var server = Start(database);
        try
        {
            var oldSecret = await server.ProvisionAsync("agent-wb", SecureServer.AdminKey);
            var oldToken = await server.TokenAsync("agent-wb", oldSecret);
            await server.AssertBeatAsync("agent-wb", oldToken, HttpStatusCode.OK);
            var oldStamp = await StampAsync(database, "default", "agent-wb");
            var newSecret = await server.RotateAsync("agent-wb", SecureServer.AdminKey);
            var newToken = await server.TokenAsync("agent-wb", newSecret);
            var stamp = await StampAsync(database, "default", "agent-wb");
            Assert.NotNull(stamp);
            Assert.NotEqual(oldStamp, stamp);

            // Heartbeats of the online device are written behind; that must not bring the old secret back.
            for (var i = 0; i < 3; i++)
            {
                await server.AdvanceAsync(TimeSpan.FromSeconds(1));
                await server.AssertBeatAsync("agent-wb", newToken, HttpStatusCode.OK);
            }

            var version = (await server.GetDeviceAsync("agent-wb", SecureServer.AdminKey)).GetProperty("version").GetInt64();
            Assert.Equal(6, version); // provisioned 1, online 2, rotated 3, then three heartbeats (not durable: written behind)

            // A graceful stop writes what was left behind.
            server = await server.RestartAsync(Downtime);
            Assert.Equal(version, await VersionAsync(database, "default", "agent-wb"));
            Assert.Equal(stamp, await StampAsync(database, "default", "agent-wb"));

            await server.AssertBeatAsync("agent-wb", oldToken, HttpStatusCode.Unauthorized);
            await server.AssertBeatAsync("agent-wb", newToken, HttpStatusCode.OK);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_database_never_holds_a_secret_or_an_api_key_in_clear()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var server = Start(database);
        var secrets = new List<string>();
        try
        {
            var (_, operatorKey) = await server.CreateKeyAsync("acme", "operator");
            var (revokedId, revokedKey) = await server.CreateKeyAsync("acme", "admin");
            var (_, viewerKey) = await server.CreateKeyAsync("globex", "viewer");
            using (var revoke = await server.SendAsync(HttpMethod.Delete, $"/api/v1/api-keys/{revokedId}", SecureServer.AdminKey))
            {
                Assert.Equal(HttpStatusCode.NoContent, revoke.StatusCode);
            }

            secrets.Add(await server.ProvisionAsync("agent-a", operatorKey));
            secrets.Add(await server.ProvisionAsync("agent-b", SecureServer.AdminKey));
            secrets.Add(await server.RotateAsync("agent-a", operatorKey));
            var token = await server.TokenAsync("agent-a", secrets[^1]);
            await server.AssertBeatAsync("agent-a", token, HttpStatusCode.OK);
            await server.AdvanceAsync(TimeSpan.FromSeconds(1));
            await server.AssertBeatAsync("agent-a", token, HttpStatusCode.OK);
            await server.AdvanceAsync(TimeSpan.FromSeconds(1));
            await server.AdvanceAsync(TimeSpan.FromSeconds(1));

            var apiKeys = new[] { operatorKey, revokedKey, viewerKey, SecureServer.AdminKey };
            var credentials = secrets.Concat(apiKeys).Append(token).ToList();

            // Every row of every table, as JSON (bytea columns appear as hex).
            var rows = await AllRowsAsync(database);
            Assert.Contains(rows, row => row.Table == "presence_api_keys");
            Assert.Contains(rows, row => row.Table == "presence_devices");
            foreach (var credential in credentials)
            {
                foreach (var part in Parts(credential))
                {
                    var hex = Convert.ToHexStringLower(Encoding.UTF8.GetBytes(part));
                    foreach (var (table, json) in rows)
                    {
                        Assert.False(json.Contains(part, StringComparison.Ordinal), $"{table} holds part of a credential in clear: {json}");
                        Assert.False(json.Contains(hex, StringComparison.OrdinalIgnoreCase), $"{table} holds part of a credential as bytes: {json}");
                    }
                }
            }

            // What is stored instead: PBKDF2 blobs that record the configured iterations, and SHA-256 of each key.
            foreach (var hash in await BytesAsync(database, "SELECT secret_hash FROM presence_devices ORDER BY device_id"))
            {
                Assert.Equal(53, hash.Length);
                Assert.Equal(1, hash[0]);
                Assert.Equal(10_000, System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(hash.AsSpan(1)));
            }

            Assert.All(await BytesAsync(database, "SELECT key_hash FROM presence_api_keys"), hash => Assert.Equal(32, hash.Length));
            Assert.Equal(3, (await BytesAsync(database, "SELECT key_hash FROM presence_api_keys")).Count); // the bootstrap key is not stored
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    [Fact]
    public async Task Removing_a_device_and_provisioning_it_again_gives_a_new_secret_and_revokes_the_old_tokens()
    {
        var database = await postgres.Server.CreateDatabaseAsync();
        var server = Start(database);
        try
        {
            var (_, operatorKey) = await server.CreateKeyAsync("acme", "operator");
            var oldSecret = await server.ProvisionAsync("agent-re", operatorKey);
            var oldToken = await server.TokenAsync("agent-re", oldSecret);
            await server.AssertBeatAsync("agent-re", oldToken, HttpStatusCode.OK);
            var oldStamp = await StampAsync(database, "acme", "agent-re");
            Assert.NotNull(oldStamp);

            using (var removed = await server.SendAsync(HttpMethod.Delete, "/api/v1/devices/agent-re", operatorKey))
            {
                Assert.Equal(HttpStatusCode.NoContent, removed.StatusCode);
            }

            Assert.Null(await StampAsync(database, "acme", "agent-re"));
            await server.AssertBeatAsync("agent-re", oldToken, HttpStatusCode.Unauthorized);

            var newSecret = await server.ProvisionAsync("agent-re", operatorKey);
            Assert.NotEqual(oldSecret, newSecret);
            var newStamp = await StampAsync(database, "acme", "agent-re");
            Assert.NotNull(newStamp);
            Assert.NotEqual(oldStamp, newStamp);

            await server.AssertBeatAsync("agent-re", oldToken, HttpStatusCode.Unauthorized);
            using (var old = await server.SendAsync(HttpMethod.Post, "/api/v1/devices/auth", body: new { device_id = "agent-re", secret = oldSecret }))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, old.StatusCode);
            }

            var newToken = await server.TokenAsync("agent-re", newSecret);
            await server.AssertBeatAsync("agent-re", newToken, HttpStatusCode.OK);

            server = await server.RestartAsync(Downtime);

            await server.AssertBeatAsync("agent-re", oldToken, HttpStatusCode.Unauthorized);
            await server.AssertBeatAsync("agent-re", newToken, HttpStatusCode.OK);
        }
        finally
        {
            await server.DisposeAsync();
        }
    }

    private static PostgresPresenceServer Start(string database) => new(database, settings: new()
    {
        ["Presence:Auth:Mode"] = "device-token",
        ["Presence:Auth:TokenSigningKey"] = SecureServer.SigningKey,
        ["Presence:Auth:AdminApiKey"] = SecureServer.AdminKey,
        ["Presence:Auth:TokenLifetimeMinutes"] = "10",
        ["Presence:Auth:SecretHashIterations"] = "10000",
    });

    /// <summary>The credential and its parts worth finding: the whole, and each dot-separated piece of 16+ characters.</summary>
    private static IEnumerable<string> Parts(string credential) =>
        credential.Split('.').Where(p => p.Length >= 16 && !IsKeyId(p)).Prepend(credential);

    /// <summary>API key ids are stored in clear by design (they name the key, they do not prove it).</summary>
    private static bool IsKeyId(string part) => part.Length == 16 && part.All(char.IsAsciiHexDigitLower);

    private static async Task<List<(string Table, string Json)>> AllRowsAsync(string database)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        var tables = new List<string>();
        await using (var list = new NpgsqlCommand("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename", connection))
        await using (var reader = await list.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                tables.Add(reader.GetString(0));
            }
        }

        var rows = new List<(string, string)>();
        foreach (var table in tables)
        {
            await using var select = new NpgsqlCommand($"SELECT row_to_json(t)::text FROM \"{table}\" t", connection);
            await using var reader = await select.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                rows.Add((table, reader.GetString(0)));
            }
        }

        return rows;
    }

    private static async Task<List<byte[]>> BytesAsync(string database, string sql)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<byte[]>();
        while (await reader.ReadAsync())
        {
            values.Add(reader.GetFieldValue<byte[]>(0));
        }

        return values;
    }

    private static async Task<long?> StampAsync(string database, string tenant, string deviceId) =>
        await ScalarAsync<long?>(database, "SELECT secret_stamp FROM presence_devices WHERE tenant_id = @t AND device_id = @d", tenant, deviceId);

    private static async Task<long> VersionAsync(string database, string tenant, string deviceId) =>
        await ScalarAsync<long?>(database, "SELECT version FROM presence_devices WHERE tenant_id = @t AND device_id = @d", tenant, deviceId) ?? 0;

    private static async Task<T?> ScalarAsync<T>(string database, string sql, string tenant, string deviceId)
    {
        await using var connection = new NpgsqlConnection(database);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.AddWithValue("t", tenant);
        command.Parameters.AddWithValue("d", deviceId);
        return await command.ExecuteScalarAsync() is { } value and not DBNull ? (T)value : default;
    }
}

/// <summary>The security helpers of <see cref="SecureServer"/>, for a gateway that is not one (PostgreSQL storage).</summary>
file static class SecureApi
{
    public static Task<HttpResponseMessage> SendAsync(this PresenceServer server, HttpMethod method, string path, string? bearer = null, object? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        if (bearer is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", bearer);
        }

        if (body is not null)
        {
            request.Content = new StringContent(JsonSerializer.Serialize(body), Encoding.UTF8, "application/json");
        }

        return server.Http.SendAsync(request);
    }

    public static async Task<(string KeyId, string ApiKey)> CreateKeyAsync(this PresenceServer server, string tenant, string role)
    {
        using var response = await server.SendAsync(HttpMethod.Post, $"/api/v1/tenants/{tenant}/api-keys", SecureServer.AdminKey, new { role, name = $"{role} of {tenant}" });
        var json = await BodyAsync(response, HttpStatusCode.Created, "create key");
        return (json.GetProperty("key_id").GetString()!, json.GetProperty("api_key").GetString()!);
    }

    public static async Task<string> ProvisionAsync(this PresenceServer server, string deviceId, string apiKey, object? body = null)
    {
        using var response = await server.SendAsync(HttpMethod.Put, $"/api/v1/devices/{deviceId}", apiKey, body ?? new { });
        return (await BodyAsync(response, HttpStatusCode.Created, $"provision {deviceId}")).GetProperty("secret").GetString()!;
    }

    public static async Task<string> RotateAsync(this PresenceServer server, string deviceId, string apiKey)
    {
        using var response = await server.SendAsync(HttpMethod.Put, $"/api/v1/devices/{deviceId}?rotate_secret=true", apiKey);
        return (await BodyAsync(response, HttpStatusCode.OK, $"rotate {deviceId}")).GetProperty("secret").GetString()!;
    }

    public static async Task<string> TokenAsync(this PresenceServer server, string deviceId, string secret)
    {
        using var response = await server.Http.PostAsJsonAsync("/api/v1/devices/auth", new { device_id = deviceId, secret });
        return (await BodyAsync(response, HttpStatusCode.OK, $"auth {deviceId}")).GetProperty("token").GetString()!;
    }

    public static async Task<JsonElement> GetDeviceAsync(this PresenceServer server, string deviceId, string apiKey)
    {
        using var response = await server.SendAsync(HttpMethod.Get, $"/api/v1/devices/{deviceId}", apiKey);
        return await BodyAsync(response, HttpStatusCode.OK, $"GET {deviceId}");
    }

    public static async Task AssertBeatAsync(this PresenceServer server, string deviceId, string token, HttpStatusCode expected)
    {
        using var response = await server.SendAsync(HttpMethod.Post, "/api/v1/heartbeat", token, new { device_id = deviceId });
        Assert.True(response.StatusCode == expected, $"heartbeat {deviceId}: expected {(int)expected}, got {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
    }

    private static async Task<JsonElement> BodyAsync(HttpResponseMessage response, HttpStatusCode expected, string what)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{what}: {(int)response.StatusCode} {text}");
        return JsonDocument.Parse(text).RootElement.Clone();
    }
}
