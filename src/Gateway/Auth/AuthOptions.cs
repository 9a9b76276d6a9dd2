using Microsoft.Extensions.Options;

namespace Presence.Gateway.Auth;

/// <summary><c>Presence:Auth</c>: who may call the gateway.</summary>
public sealed class AuthOptions
{
    public const string Section = "Presence:Auth";
    public const string None = "none";
    public string Mode { get; set; } = None;
    public string? SharedSecret { get; set; }
    public string? TokenSigningKey { get; set; }
    public string? AdminApiKey { get; set; }
    public bool AllowInsecure { get; set; }
}

/// <summary>
/// Refuses configurations that would expose an unauthenticated service: mode <c>none</c> listens on loopback only
/// unless <c>Presence:Auth:AllowInsecure=true</c>.
/// </summary>
internal sealed class AuthOptionsValidator(IConfiguration configuration) : IValidateOptions<AuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        if (options.Mode is "shared-secret" or "device-token")
        {
            return ValidateOptionsResult.Fail($"{AuthOptions.Section}:Mode: '{options.Mode}' is not available in this build yet; use 'none'");
        }

        if (options.Mode != AuthOptions.None)
        {
            return ValidateOptionsResult.Fail($"{AuthOptions.Section}:Mode must be 'none', 'shared-secret' or 'device-token' (got '{options.Mode}')");
        }

        var exposed = ListenUrls(configuration).FirstOrDefault(url => !IsLoopback(url));
        if (exposed is not null && !options.AllowInsecure)
        {
            return ValidateOptionsResult.Fail(
                $"{AuthOptions.Section}:Mode is 'none' (no credentials) but the service would listen on {exposed}, which is not loopback; " +
                $"configure credentials, listen on 127.0.0.1, or set {AuthOptions.Section}:AllowInsecure=true");
        }

        return ValidateOptionsResult.Success;
    }

    /// <summary>Every address the server may bind: <c>urls</c>, <c>http_ports</c>/<c>https_ports</c> (all interfaces) and Kestrel endpoints.</summary>
    public static IEnumerable<string> ListenUrls(IConfiguration configuration)
    {
        var separators = new[] { ';', ',' };
        const StringSplitOptions Split = StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries;
        foreach (var url in (configuration["urls"] ?? "").Split(separators, Split))
        {
            yield return url;
        }

        foreach (var key in new[] { "http_ports", "https_ports" })
        {
            foreach (var port in (configuration[key] ?? "").Split(separators, Split))
            {
                yield return $"http://*:{port}";
            }
        }

        foreach (var endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Url"] is { Length: > 0 } url)
            {
                yield return url;
            }
        }
    }

    private static bool IsLoopback(string url)
    {
        var host = url;
        var scheme = host.IndexOf("://", StringComparison.Ordinal);
        if (scheme >= 0)
        {
            host = host[(scheme + 3)..];
        }

        var end = host.StartsWith('[') ? host.IndexOf(']', StringComparison.Ordinal) + 1 : host.IndexOf(':', StringComparison.Ordinal);
        host = end > 0 ? host[..end] : host.TrimEnd('/');
        return host.Equals("localhost", StringComparison.OrdinalIgnoreCase)
            || (System.Net.IPAddress.TryParse(host.Trim('[', ']'), out var address) && System.Net.IPAddress.IsLoopback(address));
    }
}
