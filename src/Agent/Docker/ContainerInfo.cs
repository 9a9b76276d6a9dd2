using System.Globalization;
using System.Text;
using System.Text.Json;
using Presence.Agent.Host;

namespace Presence.Agent.Docker;

/// <summary>One container as the contract carries it: <c>{"name","image","state","ports"}</c>, each within its limits.</summary>
internal sealed record ContainerInfo(string Name, string Image, string State, string Ports)
{
    public const int MaxContainers = 256;
    public const int MaxName = 128;
    public const int MaxImage = 256;
    public const int MaxState = 32;
    public const int MaxPorts = 128;

    /// <summary>
    /// Maps the Docker Engine's <c>GET /containers/json</c> answer: <c>Names[0]</c> without its leading <c>/</c> (the
    /// short id when there is none), <c>Image</c>, <c>State</c>, and <c>Ports</c> written as <c>docker ps</c> does
    /// (<c>0.0.0.0:8080->80/tcp, 443/tcp</c>). Strings are cut to the contract's limits and at most 256 containers are kept.
    /// </summary>
    public static IReadOnlyList<ContainerInfo> FromEngineJson(JsonElement list)
    {
        if (list.ValueKind != JsonValueKind.Array)
        {
            throw new JsonException("the Docker Engine's container list is not a JSON array");
        }

        var containers = new List<ContainerInfo>(Math.Min(list.GetArrayLength(), MaxContainers));
        foreach (var item in list.EnumerateArray())
        {
            if (containers.Count == MaxContainers)
            {
                break;
            }

            if (item.ValueKind == JsonValueKind.Object && FromEngineItem(item) is { } container)
            {
                containers.Add(container);
            }
        }

        return containers;
    }

    private static ContainerInfo? FromEngineItem(JsonElement item)
    {
        var name = "";
        if (item.TryGetProperty("Names", out var names) && names.ValueKind == JsonValueKind.Array && names.GetArrayLength() > 0
            && names[0].ValueKind == JsonValueKind.String)
        {
            name = names[0].GetString()!.TrimStart('/');
        }

        if (name.Length == 0)
        {
            var id = String(item, "Id");
            name = id.Length > 12 ? id[..12] : id;
        }

        name = HostIdentity.Printable(name, MaxName);
        return name.Length == 0
            ? null
            : new ContainerInfo(
                name,
                HostIdentity.Printable(String(item, "Image"), MaxImage),
                HostIdentity.Printable(String(item, "State"), MaxState),
                HostIdentity.Printable(PortsText(item), MaxPorts));
    }

    private static string String(JsonElement item, string property) =>
        item.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString()! : "";

    private static string PortsText(JsonElement item)
    {
        if (!item.TryGetProperty("Ports", out var ports) || ports.ValueKind != JsonValueKind.Array)
        {
            return "";
        }

        var text = new StringBuilder();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var port in ports.EnumerateArray())
        {
            if (port.ValueKind != JsonValueKind.Object || !port.TryGetProperty("PrivatePort", out var privatePort) || !privatePort.TryGetInt32(out var inner))
            {
                continue;
            }

            var type = String(port, "Type");
            var entry = port.TryGetProperty("PublicPort", out var publicPort) && publicPort.TryGetInt32(out var outer)
                ? string.Create(CultureInfo.InvariantCulture, $"{Host(String(port, "IP"))}:{outer}->{inner}/{type}")
                : string.Create(CultureInfo.InvariantCulture, $"{inner}/{type}");
            if (seen.Add(entry))
            {
                text.Append(text.Length == 0 ? "" : ", ").Append(entry);
            }

            if (text.Length > MaxPorts)
            {
                break;
            }
        }

        return text.ToString();
    }

    private static string Host(string ip) => ip.Contains(':', StringComparison.Ordinal) ? $"[{ip}]" : ip;
}
