namespace Presence.Grains.Abstractions;

/// <summary>Identity of a device grain: device ids are unique per tenant.</summary>
public readonly record struct DeviceKey(string TenantId, string DeviceId)
{
    public const string DefaultTenant = "default";

    /// <summary>The first 8 characters of the device id, for logs (full ids never appear in logs).</summary>
    public string ShortId => DeviceId.Length <= 8 ? DeviceId : DeviceId[..8];

    public override string ToString() => $"{TenantId}/{ShortId}";
}
