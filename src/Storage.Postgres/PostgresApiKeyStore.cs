using Npgsql;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

/// <summary>API keys in <c>presence_api_keys</c>; an outage surfaces as <see cref="StorageUnavailableException"/> (503).</summary>
internal sealed class PostgresApiKeyStore(NpgsqlDataSource data, PostgresPresenceStore store) : IApiKeyStore
{
    public async ValueTask CreateAsync(ApiKeyRecord key, CancellationToken cancellationToken = default) =>
        await store.Read(async () =>
        {
            await using var command = data.CreateCommand(
                "INSERT INTO presence_api_keys (key_id, tenant_id, role, name, key_hash, created_at) VALUES (@id, @t, @role, @name, @hash, @at)");
            command.Parameters.AddWithValue("id", key.KeyId);
            command.Parameters.AddWithValue("t", key.TenantId);
            command.Parameters.AddWithValue("role", (short)key.Role);
            command.Parameters.AddWithValue("name", key.Name);
            command.Parameters.AddWithValue("hash", key.KeyHash);
            command.Parameters.AddWithValue("at", key.CreatedAt);
            return await command.ExecuteNonQueryAsync(cancellationToken);
        });

    public ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken = default) =>
        store.Read(async () =>
        {
            await using var command = data.CreateCommand(
                "SELECT key_id, tenant_id, role, name, key_hash, created_at, revoked_at FROM presence_api_keys WHERE key_id = @id");
            command.Parameters.AddWithValue("id", keyId);
            await using var row = await command.ExecuteReaderAsync(cancellationToken);
            return await row.ReadAsync(cancellationToken)
                ? new ApiKeyRecord(
                    row.GetString(0), row.GetString(1), (ApiRole)row.GetInt16(2), row.GetString(3), row.GetFieldValue<byte[]>(4),
                    row.GetDateTime(5), row.IsDBNull(6) ? null : row.GetDateTime(6))
                : null;
        });

    public ValueTask<bool> RevokeAsync(string keyId, DateTime at, CancellationToken cancellationToken = default) =>
        store.Read(async () =>
        {
            await using var command = data.CreateCommand("UPDATE presence_api_keys SET revoked_at = @at WHERE key_id = @id AND revoked_at IS NULL");
            command.Parameters.AddWithValue("id", keyId);
            command.Parameters.AddWithValue("at", at);
            return await command.ExecuteNonQueryAsync(cancellationToken) == 1;
        });
}
