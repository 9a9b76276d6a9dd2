using System.Net;

namespace Presence.Runtime.Cluster;

/// <summary>The silo's listening endpoint (<c>Presence:Silo:Endpoint</c>) and the address it advertises to gateways.</summary>
public static class SiloEndpoint
{
    /// <summary>Parses <c>ip:port</c> (IPv6 as <c>[::1]:port</c>).</summary>
    public static bool TryParse(string? text, out IPEndPoint endpoint)
    {
        endpoint = null!;
        if (string.IsNullOrWhiteSpace(text) || !IPEndPoint.TryParse(text, out var parsed) || parsed.Port > ushort.MaxValue
            || !text.Contains(':', StringComparison.Ordinal) || text.EndsWith(':'))
        {
            return false;
        }

        // IPEndPoint.TryParse accepts a bare address with port 0; an endpoint must say its port.
        var portText = text[(text.LastIndexOf(':') + 1)..];
        if (!int.TryParse(portText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _)
            || text.StartsWith('[') != text.Contains("]:", StringComparison.Ordinal))
        {
            return false;
        }

        endpoint = parsed;
        return true;
    }

    /// <summary>
    /// What gateways are told to connect to: <paramref name="advertisedHost"/> when set, else the bound address (a
    /// wildcard bind advertises the machine's host name), with the bound port.
    /// </summary>
    public static string Advertised(IPEndPoint bound, string? advertisedHost)
    {
        var host = !string.IsNullOrWhiteSpace(advertisedHost) ? advertisedHost
            : bound.Address.Equals(IPAddress.Any) || bound.Address.Equals(IPAddress.IPv6Any) ? Dns.GetHostName()
            : bound.Address.ToString();
        return host.Contains(':', StringComparison.Ordinal) && !host.StartsWith('[') ? $"[{host}]:{bound.Port}" : $"{host}:{bound.Port}";
    }
}
