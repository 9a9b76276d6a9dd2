using System.Text.Json;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Tests.Silo;

public sealed class EventStreamTests
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(250);

    /// <summary>Registrations, timeouts, returns, removals and command results across many partitions.</summary>
    private static async Task<TestSilo> BusySiloAsync()
    {
        var silo = await TestSilo.StartAsync();
        var ids = Enumerable.Range(0, 60).Select(i => $"stream-{i:D2}").ToArray();
        await Task.WhenAll(ids.Select(silo.HeartbeatAsync));
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(4), Tick);
        await Task.WhenAll(ids.Where((_, i) => i % 2 == 0).Select(silo.HeartbeatAsync));
        await Task.WhenAll(ids.Where((_, i) => i % 3 == 0).Select(id => silo.Grains.CommandResultAsync(TestSilo.Key(id), new CommandResult("c-" + id, true, null)).AsTask()));
        await Task.WhenAll(ids.Where((_, i) => i % 5 == 0).Select(id => silo.Grains.RemoveAsync(TestSilo.Key(id)).AsTask()));
        await silo.AdvanceToAsync(silo.Now + TimeSpan.FromSeconds(4), Tick);
        return silo;
    }

    [Fact]
    public async Task Every_device_has_gapless_sequences_and_the_log_has_gapless_positions()
    {
        await using var silo = await BusySiloAsync();

        var events = silo.Events();

        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Position));
        Assert.Equal(silo.Store.Events.Head.Position, events.Count);
        Assert.All(events.GroupBy(e => e.DeviceId), device =>
            Assert.Equal(Enumerable.Range(1, device.Count()).Select(i => (long)i), device.Select(e => e.Sequence)));
    }

    [Fact]
    public async Task Resuming_from_any_event_id_yields_exactly_the_later_events()
    {
        await using var silo = await BusySiloAsync();
        var log = silo.Store.Events;
        var events = silo.Events();

        for (var i = 0; i < events.Count; i += 7)
        {
            using var json = JsonDocument.Parse(events[i].ToJson(log.Epoch));
            Assert.True(EventCursor.TryParse(json.RootElement.GetProperty("id").GetString(), out var cursor));

            var rest = new List<DeviceEvent>();
            while (cursor.Position < log.Head.Position)
            {
                var page = await log.ReadAsync("default", cursor, 50);
                Assert.Equal(CursorState.Valid, page.State);
                rest.AddRange(page.Events);
                cursor = page.Next;
            }

            Assert.Equal(events.Skip(i + 1), rest);
        }
    }

    [Fact]
    public async Task Rendered_events_carry_the_device_and_its_sequence()
    {
        await using var silo = await BusySiloAsync();
        var log = silo.Store.Events;

        Assert.All(silo.Events(), e =>
        {
            using var json = JsonDocument.Parse(e.ToJson(log.Epoch));
            var root = json.RootElement;
            Assert.Equal($"/tenants/default/devices/{e.DeviceId}", root.GetProperty("source").GetString());
            Assert.Equal(e.DeviceId, root.GetProperty("deviceid").GetString());
            Assert.Equal(e.Sequence, root.GetProperty("sequence").GetInt64());
            Assert.Equal(new EventCursor(log.Epoch, e.Position).ToString(), root.GetProperty("id").GetString());
        });
    }

    [Fact]
    public async Task Heartbeats_of_the_last_minute_are_counted_per_tenant()
    {
        await using var silo = await TestSilo.StartAsync(new() { ["Presence:Heartbeat:TimeoutSeconds"] = "90" });
        for (var i = 0; i < 5; i++)
        {
            await silo.HeartbeatAsync($"counted-{i}");
        }

        await silo.Grains.HeartbeatAsync(new DeviceKey("acme", "other"), new HeartbeatInput("other"));

        Assert.Equal(5, silo.Runtime.HeartbeatsLastMinute("default"));
        Assert.Equal(1, silo.Runtime.HeartbeatsLastMinute("acme"));
        await silo.AdvanceAsync(TimeSpan.FromSeconds(59));
        Assert.Equal(5, silo.Runtime.HeartbeatsLastMinute("default"));
        await silo.AdvanceAsync(TimeSpan.FromSeconds(1));
        Assert.Equal(0, silo.Runtime.HeartbeatsLastMinute("default"));
    }
}
