using Microsoft.Extensions.Options;

namespace Presence.Gateway.Hosting;

/// <summary><c>Presence:Limits</c>: how many connections one gateway accepts (beyond them Kestrel refuses new ones).</summary>
public sealed class LimitsOptions
{
    public const string Section = "Presence:Limits";

    /// <summary>Open connections of every kind, WebSockets included.</summary>
    public long MaxConnections { get; set; } = 50_000;

    /// <summary>Open WebSockets (device channels and event streams).</summary>
    public long MaxWebSockets { get; set; } = 50_000;
}

internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions options)
    {
        var failures = new List<string>();
        if (options.MaxConnections < 1)
        {
            failures.Add($"{LimitsOptions.Section}:MaxConnections must be at least 1");
        }

        if (options.MaxWebSockets < 1)
        {
            failures.Add($"{LimitsOptions.Section}:MaxWebSockets must be at least 1");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
