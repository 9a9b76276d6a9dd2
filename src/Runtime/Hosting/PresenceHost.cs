using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Presence.Runtime.Hosting;

/// <summary>How every Presence process runs: invalid configuration ends start-up with the offending key named, exit code 2.</summary>
public static partial class PresenceHost
{
    /// <summary>Runs until shutdown (0), or reports invalid configuration in one log line and returns 2.</summary>
    public static int RunPresence(this IHost host)
    {
        var logger = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Presence");
        try
        {
            // Validate before the host starts, so a bad setting is one clear line instead of the host's stack trace.
            host.Services.GetService<IStartupValidator>()?.Validate();
        }
        catch (Exception e) when (e is OptionsValidationException or InvalidOperationException)
        {
            var failures = e is OptionsValidationException validation ? validation.Failures : [e.Message];
            InvalidConfiguration(logger, string.Join("; ", failures));
            // The console logger writes from a background queue: disposing the host flushes it before the exit.
            host.Dispose();
            return 2;
        }

        host.Run();
        return 0;
    }

    [LoggerMessage(EventId = 3002, Level = LogLevel.Critical, Message = "Presence did not start: invalid configuration: {Failures}")]
    private static partial void InvalidConfiguration(ILogger logger, string failures);
}
