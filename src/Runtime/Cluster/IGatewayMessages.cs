namespace Presence.Runtime.Cluster;

/// <summary>
/// Best-effort messages between the gateways of a cluster (a command for a device channel another gateway holds, a
/// channel to close, a revoked API key): delivered at most once to every gateway listening at the time, the sender
/// included. Nothing durable depends on them.
/// </summary>
public interface IGatewayMessages
{
    /// <summary>The largest message, in UTF-8 bytes, <see cref="PublishAsync"/> accepts.</summary>
    int MaxMessageBytes { get; }

    /// <summary>Sends <paramref name="message"/> to every gateway; <see cref="Storage.UnavailableException"/> when storage is unreachable.</summary>
    ValueTask PublishAsync(string message, CancellationToken cancellationToken);

    /// <summary>Sets the one handler of received messages (called on a background thread; it must not block).</summary>
    void OnMessage(Action<string> handler);
}
