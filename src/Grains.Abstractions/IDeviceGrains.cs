namespace Presence.Grains.Abstractions;

/// <summary>
/// Calls into device grains, wherever they live (an embedded silo, or a remote silo in cluster mode).
/// Each call is one turn of the device's grain; calls to one device are applied in the order they arrive.
/// </summary>
public interface IDeviceGrains
{
    /// <summary>Applies a heartbeat exactly once, registering the device on its first one.</summary>
    ValueTask<HeartbeatResult> HeartbeatAsync(DeviceKey key, HeartbeatInput input, CancellationToken cancellationToken = default);

    /// <summary>Creates the device (offline, never seen) or updates what an operator sets: name, timeout, labels, secret.</summary>
    ValueTask<ProvisionResult> ProvisionAsync(DeviceKey key, ProvisionInput input, CancellationToken cancellationToken = default);

    /// <summary>The device's current state, or null when it does not exist.</summary>
    ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default);

    /// <summary>Removes the device (offline with reason <c>removed</c> first if online). False when unknown.</summary>
    ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default);

    /// <summary>Sessions newest first, or null when the device does not exist.</summary>
    ValueTask<IReadOnlyList<SessionRecord>?> GetSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default);

    /// <summary>A device channel (<c>/ws/device</c>) opened: the device stays online while any is open.</summary>
    ValueTask ChannelOpenedAsync(DeviceKey key, CancellationToken cancellationToken = default);

    /// <summary>A device channel closed: offline with reason <c>disconnected</c> after the grace period.</summary>
    ValueTask ChannelClosedAsync(DeviceKey key, CancellationToken cancellationToken = default);

    /// <summary>Records a command's result as a <c>command.result</c> event. False when the device does not exist.</summary>
    ValueTask<bool> CommandResultAsync(DeviceKey key, CommandResult result, CancellationToken cancellationToken = default);
}

/// <summary>A device's answer to a command.</summary>
public sealed record CommandResult(string CommandId, bool Ok, string? Output);

/// <summary>
/// What <c>PUT /api/v1/devices/{id}</c> sets; null fields are left as they are (a new device gets its id as name, the
/// default timeout and no labels). <see cref="Credential"/> replaces the device's secret.
/// </summary>
public sealed record ProvisionInput(
    string? DeviceName = null,
    TimeSpan? Timeout = null,
    IReadOnlyDictionary<string, string>? Labels = null,
    DeviceCredential? Credential = null);

/// <summary>The device after provisioning, and whether this call created it.</summary>
public readonly record struct ProvisionResult(DeviceRecord Device, bool Created);
