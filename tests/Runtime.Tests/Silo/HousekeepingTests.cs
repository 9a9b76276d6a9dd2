using Microsoft.Extensions.DependencyInjection;
using Presence.Grains.Abstractions;
using Presence.Runtime.Silo;

namespace Presence.Runtime.Tests.Silo;

public sealed class HousekeepingTests
{
    // DeleteAfterDays takes fractions: driven time moves through the silo's ticks, so tests use seconds, not days.
    private static readonly TimeSpan DeleteAfter = TimeSpan.FromSeconds(10);

    private static async Task<(TestSilo Silo, Housekeeping Jobs)> StartAsync(double? deleteAfterDays)
    {
        var silo = await TestSilo.StartAsync(
            new Dictionary<string, string?> { ["Presence:Devices:DeleteAfterDays"] = deleteAfterDays?.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        return (silo, silo.Services.GetRequiredService<Housekeeping>());
    }

    [Fact]
    public async Task Devices_silent_longer_than_DeleteAfterDays_are_removed_through_their_grains()
    {
        var (silo, jobs) = await StartAsync(DeleteAfter.TotalDays);
        await using var _ = silo;
        await silo.HeartbeatAsync("silent");
        await silo.HeartbeatAsync("recent");
        await silo.AdvanceAsync(TimeSpan.FromSeconds(6));
        await silo.HeartbeatAsync("recent");
        await silo.AdvanceAsync(TimeSpan.FromSeconds(5)); // both offline now; only "silent" was last seen over 10 s ago

        var result = await jobs.RunOnceAsync();

        Assert.Equal(1, result.Devices);
        Assert.Null(await silo.GetAsync("silent"));
        Assert.NotNull(await silo.GetAsync("recent"));
        Assert.Equal(DeviceEventType.Removed, silo.Events("silent")[^1].Type);
    }

    [Fact]
    public async Task A_device_that_came_back_is_not_removed()
    {
        var (silo, jobs) = await StartAsync(DeleteAfter.TotalDays);
        await using var _ = silo;
        await silo.HeartbeatAsync("back");
        await silo.AdvanceAsync(TimeSpan.FromSeconds(11));
        var candidates = await silo.Store.ReadSilentDevicesAsync(silo.Now - DeleteAfter, 10);
        await silo.HeartbeatAsync("back"); // comes back between the job's query and its removal

        Assert.Equal([TestSilo.Key("back")], candidates);
        Assert.False(await silo.Runtime.RemoveIfSilentAsync(TestSilo.Key("back"), silo.Now - DeleteAfter));
        Assert.Equal(0, (await jobs.RunOnceAsync()).Devices);
        Assert.Equal(DeviceStatus.Online, (await silo.GetAsync("back"))!.Status);
    }

    [Fact]
    public async Task Devices_are_kept_forever_by_default()
    {
        var (silo, jobs) = await StartAsync(deleteAfterDays: null);
        await using var _ = silo;
        await silo.HeartbeatAsync("old");
        await silo.AdvanceAsync(TimeSpan.FromSeconds(60));

        Assert.False((await jobs.RunOnceAsync()).Any);
        Assert.NotNull(await silo.GetAsync("old"));
    }
}
