using System.Collections.Concurrent;

namespace Presence.Runtime.Storage.Memory;

/// <summary>API keys in memory (embedded mode with memory storage): lost on restart, like the devices.</summary>
public sealed class MemoryApiKeyStore : IApiKeyStore
{
    private readonly ConcurrentDictionary<string, ApiKeyRecord> _keys = new(StringComparer.Ordinal);

    public ValueTask CreateAsync(ApiKeyRecord key, CancellationToken cancellationToken = default)
    {
        if (!_keys.TryAdd(key.KeyId, key))
        {
            throw new InvalidOperationException("API key ids are unique");
        }

        return ValueTask.CompletedTask;
    }

    public ValueTask<ApiKeyRecord?> FindAsync(string keyId, CancellationToken cancellationToken = default) =>
        ValueTask.FromResult(_keys.GetValueOrDefault(keyId));

    public ValueTask<bool> RevokeAsync(string keyId, DateTime at, CancellationToken cancellationToken = default)
    {
        while (_keys.TryGetValue(keyId, out var key) && key.RevokedAt is null)
        {
            if (_keys.TryUpdate(keyId, key with { RevokedAt = at }, key))
            {
                return ValueTask.FromResult(true);
            }
        }

        return ValueTask.FromResult(false);
    }
}
