using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Presence.Grains.Abstractions;
using Presence.Runtime.Silo;
using Presence.Runtime.Storage;
using Presence.Testing;

namespace Presence.Runtime.Tests.Silo;

/// <summary>
/// An embedded silo built through DI exactly as a host builds it, on driven time. Time moves only through
/// <see cref="AdvanceAsync"/>, which waits for the silo to apply what the time change caused.
/// </summary>
internal sealed class TestSilo : IAsyncDisposable
{
    public static readonly DateTime Start = new(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(3);

    private readonly ServiceProvider _services;

    private TestSilo(ServiceProvider services, ManualTimeProvider time)
    {
        _services = services;
        Time = time;
        Runtime = services.GetRequiredService<SiloRuntime>();
    }

    public ManualTimeProvider Time { get; }

    public SiloRuntime Runtime { get; }

    public IDeviceGrains Grains => _services.GetRequiredService<IDeviceGrains>();

    public IPresenceStore Store => Runtime.Store;

    public IServiceProvider Services => _services;

    public DateTime Now => Time.GetUtcNow().UtcDateTime;

    public static async Task<TestSilo> StartAsync(Dictionary<string, string?>? settings = null, Action<IServiceCollection>? configure = null)
    {
        var values = new Dictionary<string, string?>
        {
            ["Presence:Heartbeat:TimeoutSeconds"] = "3",
        };
        foreach (var (key, value) in settings ?? [])
        {
            // null removes a setting, so the option's own default applies.
            if (value is null)
            {
                values.Remove(key);
            }
            else
            {
                values[key] = value;
            }
        }

        var time = new ManualTimeProvider(new DateTimeOffset(Start));
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddSingleton<IConfiguration>(new ConfigurationBuilder().AddInMemoryCollection(values).Build());
        services.AddSingleton<TimeProvider>(time);
        configure?.Invoke(services);
        services.AddEmbeddedSilo();
        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        TestSilo silo;
        try
        {
            silo = new TestSilo(provider, time);
        }
        catch
        {
            await provider.DisposeAsync();
            throw;
        }

        await silo.Runtime.StartAsync(CancellationToken.None);
        return silo;
    }

    public static DeviceKey Key(string deviceId) => new(DeviceKey.DefaultTenant, deviceId);

    public async Task<DeviceRecord> HeartbeatAsync(string deviceId)
    {
        var result = await Grains.HeartbeatAsync(Key(deviceId), new HeartbeatInput(deviceId));
        Assert.Equal(HeartbeatOutcome.Accepted, result.Outcome);
        return result.Device!;
    }

    public async Task<DeviceRecord?> GetAsync(string deviceId) => await Grains.GetAsync(Key(deviceId));

    /// <summary>Moves time (firing the silo's ticker on the way) and waits until the partitions have applied it.</summary>
    public async Task AdvanceAsync(TimeSpan by)
    {
        Time.Advance(by);
        await Runtime.QuiesceAsync();
    }

    /// <summary>Moves time in steps of at most one timer tick, waiting for the silo after each, until <paramref name="until"/>.</summary>
    public async Task AdvanceToAsync(DateTime until, TimeSpan step, Func<Task>? afterEachStep = null)
    {
        while (Now < until)
        {
            var by = until - Now < step ? until - Now : step;
            await AdvanceAsync(by);
            if (afterEachStep is not null)
            {
                await afterEachStep();
            }
        }
    }

    /// <summary>Every event of the tenant (optionally of one device) in the log, oldest first.</summary>
    public List<DeviceEvent> Events(string? deviceId = null, string tenantId = DeviceKey.DefaultTenant)
    {
        var log = Store.Events;
        var events = new List<DeviceEvent>();
        var cursor = new EventCursor(log.Epoch, 0);
        while (cursor.Position < log.Head.Position)
        {
            var page = log.ReadAsync(tenantId, cursor, 10_000, deviceId).AsTask().GetAwaiter().GetResult(); // memory: completes at once
            Assert.Equal(CursorState.Valid, page.State);
            events.AddRange(page.Events);
            cursor = page.Next;
        }

        return events;
    }

    public List<DeviceEvent> OfflineEvents(string? deviceId = null) =>
        Events(deviceId).Where(e => e.Type == DeviceEventType.Status && e.Status == DeviceStatus.Offline).ToList();

    public async ValueTask DisposeAsync()
    {
        await Runtime.StopAsync(CancellationToken.None);
        await _services.DisposeAsync();
    }
}
