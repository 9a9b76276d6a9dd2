using Microsoft.Extensions.Options;

namespace Presence.Gateway.Auth;

/// <summary><c>Presence:Auth</c>: who may call the gateway.</summary>
public sealed class AuthOptions
{
    public const string Section = "Presence:Auth";
    public const string None = "none";
    public const string SharedSecretMode = "shared-secret";
    public const string DeviceTokenMode = "device-token";
    public const int MinSharedSecretLength = 16;
    public const int MinSigningKeyLength = 32;
    public const int MinAdminApiKeyLength = 16;

    public string Mode { get; set; } = None;
    public string? SharedSecret { get; set; }
    public string? TokenSigningKey { get; set; }

    /// <summary>The signing key being rotated out: tokens it signed are still accepted until they expire.</summary>
    public string? PreviousTokenSigningKey { get; set; }

    /// <summary>
    /// Token lifetime. Revocation does not wait for expiry (the grain checks the secret's stamp), so tokens can live
    /// long; each renewal costs one slow hash of the secret.
    /// </summary>
    public double TokenLifetimeMinutes { get; set; } = 1440;
    /// <summary>Verified device tokens each gateway remembers, so a device's repeated token skips the HMAC (0: none).</summary>
    public int TokenCacheSize { get; set; } = 100_000;

    public string? AdminApiKey { get; set; }
    public bool AllowInsecure { get; set; }

    /// <summary>Failed credential attempts allowed per minute, per source address and per device, before 429.</summary>
    public int FailuresPerMinute { get; set; } = 10;

    /// <summary>PBKDF2-SHA256 iterations for device secrets (new secrets; stored hashes keep their own count).</summary>
    public int SecretHashIterations { get; set; } = 20_000;

    public bool IsNone => Mode == None;

    public bool UsesDeviceTokens => Mode == DeviceTokenMode;
}

/// <summary>
/// Checks <c>Presence:Auth</c>: the mode's required secrets (with minimum lengths), and refuses mode <c>none</c> on an
/// address that is not loopback unless <c>Presence:Auth:AllowInsecure=true</c>. Messages name keys, never values.
/// </summary>
internal sealed class AuthOptionsValidator(IConfiguration configuration) : IValidateOptions<AuthOptions>
{
    private const string S = AuthOptions.Section;

    public ValidateOptionsResult Validate(string? name, AuthOptions options)
    {
        var failures = new List<string>();
        switch (options.Mode)
        {
            case AuthOptions.None:
                var exposed = ListenUrls(configuration).FirstOrDefault(url => !IsLoopback(url));
                if (exposed is not null && !options.AllowInsecure)
                {
                    failures.Add(
                        $"{S}:Mode is 'none' (no credentials) but the service would listen on {exposed}, which is not loopback; " +
                        $"configure credentials, listen on 127.0.0.1, or set {S}:AllowInsecure=true");
                }

                break;
            case AuthOptions.SharedSecretMode:
                RequireLength(failures, "SharedSecret", options.SharedSecret, AuthOptions.MinSharedSecretLength, "for mode 'shared-secret'");
                break;
            case AuthOptions.DeviceTokenMode:
                RequireLength(failures, "TokenSigningKey", options.TokenSigningKey, AuthOptions.MinSigningKeyLength, "for mode 'device-token'");
                break;
            default:
                failures.Add($"{S}:Mode must be 'none', 'shared-secret' or 'device-token' (got '{Printable(options.Mode)}')");
                break;
        }

        if (options.PreviousTokenSigningKey is not null)
        {
            RequireLength(failures, "PreviousTokenSigningKey", options.PreviousTokenSigningKey, AuthOptions.MinSigningKeyLength, "when set");
        }

        if (options.AdminApiKey is not null)
        {
            RequireLength(failures, "AdminApiKey", options.AdminApiKey, AuthOptions.MinAdminApiKeyLength, "when set");
        }

        if (!double.IsFinite(options.TokenLifetimeMinutes) || options.TokenLifetimeMinutes is < 1 or > 10080)
        {
            failures.Add($"{S}:TokenLifetimeMinutes must be between 1 and 10080 (7 days)");
        }

        if (options.TokenCacheSize is < 0 or > 10_000_000)
        {
            failures.Add($"{S}:TokenCacheSize must be between 0 and 10000000");
        }

        if (options.FailuresPerMinute is < 1 or > 100_000)
        {
            failures.Add($"{S}:FailuresPerMinute must be between 1 and 100000");
        }

        if (options.SecretHashIterations is < SecretHasher.MinIterations or > 10_000_000)
        {
            failures.Add($"{S}:SecretHashIterations must be between {SecretHasher.MinIterations} and 10000000");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static void RequireLength(List<string> failures, string key, string? value, int min, string when)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            failures.Add($"{S}:{key} is required {when}");
        }
        else if (value.Length < min)
        {
            failures.Add($"{S}:{key} must be at least {min} characters");
        }
    }

    private static string Printable(string value) =>
        value.Length <= 32 && !value.Any(char.IsControl) ? value : "(unprintable or too long)";

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
