using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Presence.Gateway.Apis;
using Presence.Gateway.Auth;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Presence.Gateway.Channels;
using Presence.Gateway.Cluster;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Silo;
using Presence.Gateway.Errors;
using Presence.Gateway.Streaming;
using Presence.Runtime.Options;
using Presence.Storage.Postgres;

namespace Presence.Gateway.Hosting;

/// <summary>How the gateway is put together: <see cref="AddPresenceGateway"/> for services, <see cref="MapPresenceApi"/> for the API.</summary>
public static partial class GatewayHostingExtensions
{
    public const string DefaultUrl = "http://127.0.0.1:5080";

    public static WebApplicationBuilder AddPresenceGateway(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrWhiteSpace(builder.Configuration["urls"]) && !builder.Configuration.GetSection("Kestrel:Endpoints").Exists())
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        var limits = builder.Configuration.GetSection(LimitsOptions.Section).Get<LimitsOptions>() ?? new LimitsOptions();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxConcurrentConnections = limits.MaxConnections;
            kestrel.Limits.MaxConcurrentUpgradedConnections = limits.MaxWebSockets;
            // The API's 64 KiB limit is enforced where bodies are read (413 in the one error shape). Kestrel's own
            // limit is the most it drains of a rejected body after answering, so the client reads the 413 instead of
            // a connection reset; beyond it the connection is closed.
            kestrel.Limits.MaxRequestBodySize = JsonBody.DrainLimit;
        });
        builder.Services.AddSingleton<IValidateOptions<AuthOptions>, AuthOptionsValidator>();
        builder.Services.AddOptions<AuthOptions>().BindConfiguration(AuthOptions.Section).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<LimitsOptions>, LimitsOptionsValidator>();
        builder.Services.AddOptions<LimitsOptions>().BindConfiguration(LimitsOptions.Section).ValidateOnStart();
        builder.Services.AddSingleton<DeviceTokens>();
        builder.Services.AddSingleton<ApiKeys>();
        builder.Services.AddSingleton<FailureLimiter>();
        builder.Services.AddSingleton<KeyRevocations>();
        builder.Services.AddSingleton<ApiContext>();
        builder.Services.AddSingleton<DeviceChannels>();
        builder.Services.AddSingleton<GatewayRelay>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<GatewayRelay>());
        if (builder.Configuration[$"{ClusterOptions.Section}:Mode"] == ClusterOptions.Client)
        {
            // A cluster gateway reads the partition map, the event log and device listings from the cluster's database.
            builder.Configuration.AddInMemoryCollection([new($"{StorageOptions.Section}:Provider", StorageOptions.Postgres)]);
        }

        if (builder.Configuration[$"{StorageOptions.Section}:Provider"] == StorageOptions.Postgres)
        {
            builder.Services.AddPostgresStorage(); // before the silo: migrations run before it claims partitions
        }

        return builder;
    }

    /// <summary>
    /// Where grain calls go: a silo in this process owning every partition (<c>embedded</c>, the default), or the
    /// cluster's silos (<c>Presence:Cluster:Mode=client</c>).
    /// </summary>
    public static WebApplicationBuilder AddPresenceGrains(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        if (builder.Configuration[$"{ClusterOptions.Section}:Mode"] != ClusterOptions.Client)
        {
            services.AddEmbeddedSilo();
            services.AddSingleton<ISiloDirectory, EmbeddedSiloDirectory>();
            return builder;
        }

        services.AddPresenceOptions();
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<IMembershipStore, PostgresMembership>();
        services.AddSingleton<PostgresGatewayMessages>();
        services.AddSingleton<IGatewayMessages>(sp => sp.GetRequiredService<PostgresGatewayMessages>());
        services.AddHostedService(sp => sp.GetRequiredService<PostgresGatewayMessages>());
        services.AddSingleton<ClusterClient>();
        services.AddSingleton<IDeviceGrains>(sp => sp.GetRequiredService<ClusterClient>());
        services.AddSingleton<ISiloDirectory>(sp => sp.GetRequiredService<ClusterClient>());
        services.AddHostedService(sp => sp.GetRequiredService<ClusterClient>());
        return builder;
    }

    public static WebApplication MapPresenceApi(this WebApplication app)
    {
        app.UseMiddleware<ApiErrorMiddleware>();
        app.UseSecurityHeaders();
        app.UseWebSockets();
        app.UseMiddleware<AuthMiddleware>();
        app.MapHeartbeatApi();
        app.MapDevicesApi();
        app.MapProvisioningApi();
        app.MapApiKeysApi();
        app.MapEventsApi();
        app.MapOperationsApi();
        app.MapDeviceChannel();
        app.MapEventStream();
        app.Lifetime.ApplicationStarted.Register(() => LogReady(app));
        return app;
    }

    private static void LogReady(WebApplication app)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        var storage = app.Services.GetRequiredService<IOptions<StorageOptions>>().Value.Provider;
        var auth = app.Services.GetRequiredService<IOptions<AuthOptions>>().Value.Mode;
        var mode = app.Services.GetRequiredService<IOptions<ClusterOptions>>().Value.Mode == ClusterOptions.Client ? "cluster client" : "embedded silo";
        Ready(app.Logger, string.Join(", ", addresses), mode, storage, auth);
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information,
        Message = "Presence is listening on {Addresses} ({Mode}, storage {Storage}, auth {Auth})")]
    private static partial void Ready(ILogger logger, string addresses, string mode, string storage, string auth);
}
