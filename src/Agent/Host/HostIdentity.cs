using System.Reflection;

namespace Presence.Agent.Host;

/// <summary>What the agent says about itself in every heartbeat: its device id, name, platform and version.</summary>
internal static class HostIdentity
{
    public const int MaxDeviceIdLength = 128;
    private const int MaxNameLength = 128;
    private const int MaxVersionLength = 64;

    /// <summary>The contract's device id rule: 1-128 of <c>A-Z a-z 0-9 _ . : @ -</c>.</summary>
    public static bool IsValidDeviceId(string value)
    {
        if (value.Length is 0 or > MaxDeviceIdLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!IsDeviceIdChar(c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The host name made a valid device id: other characters become <c>-</c>, at most 128; <c>agent</c> when nothing is left.</summary>
    public static string DeviceIdFrom(string hostName)
    {
        var id = string.Create(Math.Min(hostName.Length, MaxDeviceIdLength), hostName, static (span, name) =>
        {
            for (var i = 0; i < span.Length; i++)
            {
                span[i] = IsDeviceIdChar(name[i]) ? name[i] : '-';
            }
        });
        return id.Trim('-').Length == 0 ? "agent" : id;
    }

    /// <summary>The host name as a device name: trimmed, control characters dropped, at most 128 characters; null when empty.</summary>
    public static string? DeviceNameFrom(string hostName)
    {
        var name = Printable(hostName.Trim(), MaxNameLength);
        return name.Length == 0 ? null : name;
    }

    /// <summary><c>docker</c> when the agent runs in a container (the .NET images set <c>DOTNET_RUNNING_IN_CONTAINER</c>; Docker creates <c>/.dockerenv</c>), else <c>linux</c>.</summary>
    public static string Platform(Func<string, string?> environment, Func<string, bool> fileExists) =>
        string.Equals(environment("DOTNET_RUNNING_IN_CONTAINER"), "true", StringComparison.OrdinalIgnoreCase) || fileExists("/.dockerenv")
            ? "docker"
            : "linux";

    /// <summary>The agent's version (the assembly's informational version without the source revision).</summary>
    public static string AgentVersion()
    {
        var version = typeof(HostIdentity).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? typeof(HostIdentity).Assembly.GetName().Version?.ToString()
            ?? "0.0.0";
        var plus = version.IndexOf('+', StringComparison.Ordinal);
        return Printable(plus > 0 ? version[..plus] : version, MaxVersionLength);
    }

    /// <summary>
    /// <paramref name="value"/> without control characters or lone surrogates, cut to <paramref name="max"/> characters
    /// without splitting a surrogate pair: the gateway refuses both, and one odd container name must not cost every
    /// heartbeat.
    /// </summary>
    public static string Printable(string value, int max)
    {
        var clean = IsPrintable(value) ? value : string.Create(value.Length, value, static (span, text) =>
        {
            var length = 0;
            for (var i = 0; i < text.Length; i++)
            {
                var c = text[i];
                if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    span[length++] = c;
                    span[length++] = text[++i];
                }
                else if (!char.IsControl(c) && !char.IsSurrogate(c))
                {
                    span[length++] = c;
                }
            }

            span[length..].Fill('\0');
        }).TrimEnd('\0');
        if (clean.Length <= max)
        {
            return clean;
        }

        var cut = char.IsHighSurrogate(clean[max - 1]) ? max - 1 : max;
        return clean[..cut];
    }

    private static bool IsPrintable(string value)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsControl(c) || char.IsSurrogate(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsDeviceIdChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or ':' or '@' or '-';
}
