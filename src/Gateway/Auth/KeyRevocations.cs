using System.Collections.Concurrent;

namespace Presence.Gateway.Auth;

/// <summary>
/// Ends what a revoked API key has open on this gateway (event streams): each watcher gets a token that is
/// cancelled when the key is revoked here. Requests need nothing: they look their key up every time.
/// </summary>
public sealed class KeyRevocations
{
    private readonly ConcurrentDictionary<string, CancellationTokenSource> _keys = new(StringComparer.Ordinal);

    public CancellationToken Watch(string keyId) => _keys.GetOrAdd(keyId, static _ => new CancellationTokenSource()).Token;

    public void Revoke(string keyId)
    {
        if (_keys.TryRemove(keyId, out var revoked))
        {
            revoked.Cancel(); // not disposed: streams may still be registering on its token
        }
    }
}
