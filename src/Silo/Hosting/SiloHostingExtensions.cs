using System.Net;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Options;
using Presence.Runtime.Silo;
using Presence.Storage.Postgres;

namespace Presence.Silo.Hosting;

/// <summary>How a cluster silo process is put together.</summary>
public static class SiloHostingExtensions
{
    /// <summary>
    /// A silo on PostgreSQL (always: membership, leases and state live there): storage (migrations first), the runtime,
    /// the gateway listener, cluster membership and housekeeping, started in that order and stopped in reverse, so a
    /// stopping silo drains while it still answers gateways.
    /// </summary>
    public static IHostApplicationBuilder AddPresenceSilo(this IHostApplicationBuilder builder)
    {
        builder.Configuration.AddInMemoryCollection([new($"{StorageOptions.Section}:Provider", StorageOptions.Postgres)]);
        var services = builder.Services;
        services.AddPresenceOptions();
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IValidateOptions<SiloOptions>, SiloEndpointValidator>();
        services.AddPostgresStorage();
        services.TryAddSingleton<IMembershipStore, PostgresMembership>();
        services.TryAddSingleton<SiloRuntime>();
        services.TryAddSingleton<IDeviceGrains>(sp => sp.GetRequiredService<SiloRuntime>());
        services.AddHostedService(sp => sp.GetRequiredService<SiloRuntime>());
        services.TryAddSingleton<SiloListener>();
        services.AddHostedService(sp => sp.GetRequiredService<SiloListener>());
        services.TryAddSingleton(sp =>
        {
            var listener = sp.GetRequiredService<SiloListener>();
            return ActivatorUtilities.CreateInstance<ClusterMember>(sp, new Func<string>(() => listener.Address));
        });
        services.AddHostedService(sp => sp.GetRequiredService<ClusterMember>());
        services.TryAddSingleton<Housekeeping>();
        services.AddHostedService(sp => sp.GetRequiredService<Housekeeping>());
        return builder;
    }
}

/// <summary>Anything that can reach a silo can make grain calls: beyond loopback it must require the cluster secret.</summary>
internal sealed class SiloEndpointValidator(IOptions<ClusterOptions> cluster) : IValidateOptions<SiloOptions>
{
    public ValidateOptionsResult Validate(string? name, SiloOptions options) =>
        SiloEndpoint.TryParse(options.Endpoint, out var endpoint) && !IPAddress.IsLoopback(endpoint.Address) && cluster.Value.Secret is null
            ? ValidateOptionsResult.Fail(
                $"{SiloOptions.Section}:Endpoint {options.Endpoint} is reachable beyond this machine: set {ClusterOptions.Section}:Secret (at least 16 characters) on silos and gateways")
            : ValidateOptionsResult.Success;
}
