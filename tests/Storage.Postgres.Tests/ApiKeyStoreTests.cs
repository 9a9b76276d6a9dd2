using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Storage.Postgres.Tests.Support;
using Presence.Testing;

namespace Presence.Storage.Postgres.Tests;

/// <summary>
/// Credentials in PostgreSQL: API keys (create, find, revoke, seen by every process at once) and device secrets,
/// which travel with durable commits and are never touched by write-behind.
/// </summary>
public sealed class ApiKeyStoreTests(PostgresFixture fixture, ITestOutputHelper output) : IClassFixture<PostgresFixture>
{
    private static readonly byte[] HashA = [.. Enumerable.Range(0, 53).Select(i => (byte)(255 - i))];
    private static readonly byte[] HashB = [0, 1, 0, 0, 0, 0x27, 0x10, 0xFF, 0];

    [Fact]
    public async Task A_created_key_is_found_as_it_was_stored()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.StartAsync(database, output);
        var keys = new PostgresApiKeyStore(store.Data, store.Store);
        var record = Key("0123456789abcdef", ApiRole.Operator);

        await keys.CreateAsync(record).Bound();
        var found = await keys.FindAsync(record.KeyId).Bound();

        Assert.NotNull(found);
        Assert.Equal((record.KeyId, record.TenantId, record.Role, record.Name), (found.KeyId, found.TenantId, found.Role, found.Name));
        Assert.Equal(record.KeyHash, found.KeyHash);
        Same.Time(record.CreatedAt, found.CreatedAt);
        Assert.Null(found.RevokedAt);

        foreach (var role in new[] { ApiRole.Viewer, ApiRole.Admin })
        {
            var other = Key(role == ApiRole.Viewer ? "1111111111111111" : "2222222222222222", role) with { TenantId = "globex", Name = "" };
            await keys.CreateAsync(other).Bound();
            var read = await keys.FindAsync(other.KeyId).Bound();
            Assert.Equal((role, "globex", ""), (read!.Role, read.TenantId, read.Name));
        }
    }

    [Fact]
    public async Task An_unknown_id_is_not_found_and_cannot_be_revoked()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.StartAsync(database, output);
        var keys = new PostgresApiKeyStore(store.Data, store.Store);
        await keys.CreateAsync(Key("0123456789abcdef")).Bound();

        Assert.Null(await keys.FindAsync("fedcba9876543210").Bound());
        Assert.Null(await keys.FindAsync("0123456789ABCDEF").Bound());
        Assert.Null(await keys.FindAsync("").Bound());
        Assert.False(await keys.RevokeAsync("fedcba9876543210", Samples.At(1)).Bound());
        Assert.Null((await keys.FindAsync("0123456789abcdef").Bound())!.RevokedAt);
    }

    [Fact]
    public async Task A_key_is_revoked_once_and_every_process_sees_it_at_once()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.StartAsync(database, output);
        await using var other = await TestStore.StartAsync(database, output, name: "other");
        var keys = new PostgresApiKeyStore(store.Data, store.Store);
        var otherKeys = new PostgresApiKeyStore(other.Data, other.Store);
        var revoked = Key("0123456789abcdef");
        var kept = Key("aaaaaaaaaaaaaaaa");
        await keys.CreateAsync(revoked).Bound();
        await keys.CreateAsync(kept).Bound();
        Assert.Null((await otherKeys.FindAsync(revoked.KeyId).Bound())!.RevokedAt);

        Assert.True(await otherKeys.RevokeAsync(revoked.KeyId, Samples.At(60)).Bound());

        var found = await keys.FindAsync(revoked.KeyId).Bound();
        Same.Time(Samples.At(60), found!.RevokedAt!.Value);
        Assert.Equal(revoked.KeyHash, found.KeyHash);
        Assert.Null((await keys.FindAsync(kept.KeyId).Bound())!.RevokedAt);

        // Revoking again changes nothing: the first revocation time stays.
        Assert.False(await keys.RevokeAsync(revoked.KeyId, Samples.At(120)).Bound());
        Assert.False(await otherKeys.RevokeAsync(revoked.KeyId, Samples.At(180)).Bound());
        Same.Time(Samples.At(60), (await otherKeys.FindAsync(revoked.KeyId).Bound())!.RevokedAt!.Value);
    }

    [Fact]
    public async Task A_revoked_keys_id_is_never_reused()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.StartAsync(database, output);
        var keys = new PostgresApiKeyStore(store.Data, store.Store);
        var original = Key("0123456789abcdef", ApiRole.Viewer);
        await keys.CreateAsync(original).Bound();
        Assert.True(await keys.RevokeAsync(original.KeyId, Samples.At(1)).Bound());

        await Assert.ThrowsAnyAsync<Exception>(() => keys.CreateAsync(original with { Role = ApiRole.Admin, KeyHash = HashB }).Bound());

        var found = await keys.FindAsync(original.KeyId).Bound();
        Assert.Equal(ApiRole.Viewer, found!.Role);
        Assert.Equal(original.KeyHash, found.KeyHash);
        Assert.NotNull(found.RevokedAt);
        Assert.Equal(1L, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_api_keys"));
    }

    [Fact]
    public async Task A_device_credential_round_trips_through_a_commit()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var device = Samples.Device("cred") with { Credential = new DeviceCredential(long.MinValue + 1, HashA) };
        var plain = Samples.Device("plain");

        await store.RegisterAsync(device, Samples.Registered(device.Key));
        await store.RegisterAsync(plain, Samples.Registered(plain.Key));

        var read = await store.Store.ReadDeviceAsync(device.Key).Bound();
        Same.Device(device, read);
        Assert.Equal(long.MinValue + 1, read!.Credential!.Stamp);
        Assert.Equal(HashA, read.Credential.Hash);
        Assert.Null((await store.Store.ReadDeviceAsync(plain.Key).Bound())!.Credential);
        Assert.Equal(
            [$"cred|{long.MinValue + 1}|53", "plain|NULL|NULL"],
            await Sql.RowsAsync(database, "SELECT device_id, secret_stamp, length(secret_hash) FROM presence_devices ORDER BY device_id"));

        // Another process reads the same credential.
        await using var reader = await TestStore.StartAsync(database, output, name: "reader");
        var elsewhere = await reader.Store.ReadDeviceAsync(device.Key).Bound();
        Credential(device.Credential, elsewhere);
    }

    [Fact]
    public async Task A_rotation_commit_replaces_the_credential_and_a_removal_deletes_it()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var device = Samples.Device("rot", version: 1, sequence: 1) with { Credential = new DeviceCredential(1, HashA) };
        await store.RegisterAsync(device, Samples.Registered(device.Key));

        var rotated = device with { Version = 2, Credential = new DeviceCredential(2, HashB) };
        var commit = store.CommitFor(device.Key);
        commit.Upserts.Add(rotated);
        await store.Store.CommitAsync(commit).Bound();

        var read = await store.Store.ReadDeviceAsync(device.Key).Bound();
        Credential(new(2, HashB), read);
        Assert.Equal(2, read!.Version);

        // Removed and provisioned again: the new incarnation has only its own secret.
        await store.RemoveAsync(device.Key, Samples.Removed(device.Key, 2));
        Assert.Equal(0L, await Sql.ScalarAsync<long>(database, "SELECT count(*) FROM presence_devices WHERE secret_hash IS NOT NULL"));
        var reborn = Samples.Device("rot", version: 1, sequence: 1, firstSeenAt: Samples.At(100)) with { Credential = new DeviceCredential(3, HashA) };
        await store.RegisterAsync(reborn, Samples.Registered(device.Key, time: Samples.At(100)));
        read = await store.Store.ReadDeviceAsync(device.Key).Bound();
        Credential(new(3, HashA), read);
    }

    [Fact]
    public async Task Write_behind_never_writes_the_secret()
    {
        var database = await fixture.Server.CreateDatabaseAsync();
        await using var store = await TestStore.OwnAsync(database, output);
        var device = Samples.Device("wb", version: 1, sequence: 1) with { Credential = new DeviceCredential(42, HashA) };
        await store.RegisterAsync(device, Samples.Registered(device.Key));

        // A newer state without a credential: everything else is written, the secret stays.
        store.WriteBehind(Samples.Device("wb", version: 2, sequence: 1) with { Metrics = new MetricSet(["cpu_pct"], [77.5]), Credential = null });
        await store.Store.FlushAsync().Bound();
        var read = await store.Store.ReadDeviceAsync(device.Key).Bound();
        Assert.Equal(2, read!.Version);
        Assert.Equal(77.5, read.Metrics.Values[0]);
        Credential(new(42, HashA), read);

        // A newer state with another credential: still not written by write-behind.
        store.WriteBehind(Samples.Device("wb", version: 3, sequence: 1) with { Credential = new DeviceCredential(43, HashB) });
        await store.Store.FlushAsync().Bound();
        read = await store.Store.ReadDeviceAsync(device.Key).Bound();
        Assert.Equal(3, read!.Version);
        Credential(new(42, HashA), read);

        // A rotation committed while an older state with the old credential waits for write-behind: the rotation stays.
        store.WriteBehind(Samples.Device("wb", version: 5, sequence: 1) with { Credential = new DeviceCredential(42, HashA) });
        var rotation = store.CommitFor(device.Key);
        rotation.Upserts.Add(Samples.Device("wb", version: 4, sequence: 1) with { Credential = new DeviceCredential(44, HashB) });
        await store.Store.CommitAsync(rotation).Bound();
        await store.Store.FlushAsync().Bound();
        read = await store.Store.ReadDeviceAsync(device.Key).Bound();
        Assert.Equal(5, read!.Version);
        Credential(new(44, HashB), read);
    }

    private static void Credential(DeviceCredential expected, DeviceRecord? actual)
    {
        Assert.NotNull(actual?.Credential);
        Assert.Equal(expected.Stamp, actual.Credential.Stamp);
        Assert.Equal(expected.Hash, actual.Credential.Hash);
    }

    private static ApiKeyRecord Key(string keyId, ApiRole role = ApiRole.Admin) =>
        new(keyId, Samples.Tenant, role, "key " + keyId + " \u00e9", [.. HashA.Take(32)], Samples.At(0));
}
