using Microsoft.Extensions.Hosting;
using Presence.Runtime.Hosting;
using Presence.Silo.Hosting;

namespace Presence.Silo;

/// <summary>The cluster silo process (a class of its own, not top-level statements: tests reference this assembly next to the gateway's).</summary>
public static class SiloProgram
{
    public static int Main(string[] args)
    {
        // Settings files are found next to the program wherever it is started from.
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.AddPresenceSilo();
        using var host = builder.Build();
        return host.RunPresence();
    }
}
