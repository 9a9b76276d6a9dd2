using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Presence.Grains.Abstractions;
using Presence.Runtime.Options;
using Presence.Runtime.Storage;
using Presence.Runtime.Storage.Memory;

namespace Presence.Runtime.Silo;

public static class SiloServiceCollectionExtensions
{
    /// <summary>Registers Presence's options, each validated at start-up with messages that name the key.</summary>
    public static IServiceCollection AddPresenceOptions(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HeartbeatOptions>, PresenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<StorageOptions>, PresenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<EventsOptions>, PresenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RateLimitOptions>, PresenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ClusterOptions>, PresenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<SiloOptions>, PresenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DevicesOptions>, PresenceOptionsValidator>());
        services.AddOptions<HeartbeatOptions>().BindConfiguration(HeartbeatOptions.Section).ValidateOnStart();
        services.AddOptions<StorageOptions>().BindConfiguration(StorageOptions.Section).ValidateOnStart();
        services.AddOptions<EventsOptions>().BindConfiguration(EventsOptions.Section).ValidateOnStart();
        services.AddOptions<RateLimitOptions>().BindConfiguration(RateLimitOptions.Section).ValidateOnStart();
        services.AddOptions<ClusterOptions>().BindConfiguration(ClusterOptions.Section).ValidateOnStart();
        services.AddOptions<SiloOptions>().BindConfiguration(SiloOptions.Section).ValidateOnStart();
        services.AddOptions<DevicesOptions>().BindConfiguration(DevicesOptions.Section).ValidateOnStart();
        return services;
    }

    /// <summary>Hosts a silo owning every partition in this process, with the configured storage.</summary>
    public static IServiceCollection AddEmbeddedSilo(this IServiceCollection services)
    {
        services.AddPresenceOptions();
        services.AddMetrics();
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new MemoryEventLog(
            sp.GetRequiredService<IOptions<EventsOptions>>().Value.Retention,
            Random.Shared.NextInt64(1, 1L << 48)));
        services.TryAddSingleton<IPresenceStore>(sp => new MemoryPresenceStore(sp.GetRequiredService<MemoryEventLog>()));
        services.TryAddSingleton<IApiKeyStore, MemoryApiKeyStore>();
        services.TryAddSingleton<SiloRuntime>();
        services.TryAddSingleton<IDeviceGrains>(sp => sp.GetRequiredService<SiloRuntime>());
        services.AddHostedService(sp => sp.GetRequiredService<SiloRuntime>());
        services.TryAddSingleton<Housekeeping>();
        services.AddHostedService(sp => sp.GetRequiredService<Housekeeping>());
        return services;
    }
}
