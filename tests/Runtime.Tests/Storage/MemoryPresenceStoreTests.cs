using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Runtime.Storage.Memory;

namespace Presence.Runtime.Tests.Storage;

public sealed class MemoryPresenceStoreTests
{
    private static readonly DateTime T0 = Events.T0;

    private readonly MemoryEventLog _log = new(1000, 1);
    private readonly MemoryPresenceStore _store;

    public MemoryPresenceStoreTests() => _store = new MemoryPresenceStore(_log, sessionsKept: 3);

    private static DeviceRecord Device(string id, DeviceStatus status = DeviceStatus.Online, string tenant = "default", DateTime? firstSeen = null) => new()
    {
        TenantId = tenant,
        DeviceId = id,
        DeviceName = id,
        Status = status,
        FirstSeenAt = firstSeen ?? T0,
        LastSeenAt = T0,
        StatusChangedAt = T0,
        Version = 1,
        Sequence = 2,
    };

    private async Task UpsertAsync(params DeviceRecord[] devices)
    {
        var commit = new PartitionCommit();
        commit.Upserts.AddRange(devices);
        await _store.CommitAsync(commit);
    }

    private async Task<List<string>> ListAsync(StatusFilter status = StatusFilter.Any, string? prefix = null, string? after = null, int limit = 1000, string tenant = "default")
    {
        var page = await _store.ListDevicesAsync(tenant, new DeviceQuery(status, prefix, after, limit));
        return page.Devices.Select(d => d.DeviceId).ToList();
    }

    [Fact]
    public async Task Committed_devices_are_readable_by_key()
    {
        var device = Device("a");
        await UpsertAsync(device);

        Assert.Same(device, await _store.ReadDeviceAsync(new DeviceKey("default", "a")));
        Assert.Null(await _store.ReadDeviceAsync(new DeviceKey("default", "b")));
        Assert.Null(await _store.ReadDeviceAsync(new DeviceKey("acme", "a")));
    }

    [Fact]
    public async Task Devices_are_listed_by_device_id_in_ordinal_order()
    {
        string[] ids = ["b", "a", "B", "a1", "a.1", "a-1", "a:1", "a@1", "a_1", "A", "0", "Z", "z"];
        await UpsertAsync(ids.Select(id => Device(id)).ToArray());

        var listed = await ListAsync();

        Assert.Equal(ids.Order(StringComparer.Ordinal), listed);
        Assert.Equal(new[] { "0", "A", "B", "Z", "a", "a-1", "a.1", "a1", "a:1", "a@1", "a_1", "b", "z" }, listed);
    }

    [Fact]
    public async Task Prefix_selects_the_devices_whose_id_starts_with_it()
    {
        await UpsertAsync(Device("rack1-a"), Device("rack1-b"), Device("rack10-a"), Device("rack2-a"), Device("Rack1-c"), Device("rack1"));

        Assert.Equal(new[] { "rack1", "rack1-a", "rack1-b", "rack10-a" }, await ListAsync(prefix: "rack1"));
        Assert.Equal(new[] { "rack1-a", "rack1-b" }, await ListAsync(prefix: "rack1-"));
        Assert.Empty(await ListAsync(prefix: "rack3"));
    }

    [Fact]
    public async Task After_is_exclusive()
    {
        await UpsertAsync(Device("a"), Device("b"), Device("c"), Device("d"));

        Assert.Equal(new[] { "c", "d" }, await ListAsync(after: "b"));
        Assert.Equal(new[] { "c", "d" }, await ListAsync(after: "bb"));
        Assert.Empty(await ListAsync(after: "d"));
        Assert.Equal(new[] { "a", "b", "c", "d" }, await ListAsync(after: "0"));
    }

    [Fact]
    public async Task After_and_prefix_combine()
    {
        await UpsertAsync(Device("a"), Device("x-1"), Device("x-2"), Device("x-3"), Device("y"));

        Assert.Equal(new[] { "x-2", "x-3" }, await ListAsync(prefix: "x-", after: "x-1"));
        Assert.Equal(new[] { "x-1", "x-2", "x-3" }, await ListAsync(prefix: "x-", after: "a"));
        Assert.Empty(await ListAsync(prefix: "x-", after: "y"));
    }

    [Fact]
    public async Task Status_filter_selects_online_or_offline_devices()
    {
        await UpsertAsync(Device("a"), Device("b", DeviceStatus.Offline), Device("c"), Device("d", DeviceStatus.Offline));

        Assert.Equal(new[] { "a", "c" }, await ListAsync(StatusFilter.Online));
        Assert.Equal(new[] { "b", "d" }, await ListAsync(StatusFilter.Offline));
        Assert.Equal(new[] { "a", "b", "c", "d" }, await ListAsync(StatusFilter.Any));
    }

    [Fact]
    public async Task Limit_cuts_the_page_and_next_continues_it()
    {
        await UpsertAsync(Enumerable.Range(0, 25).Select(i => Device($"d{i:D2}")).ToArray());

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = await _store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Any, null, after, 10));
            Assert.True(page.Devices.Count <= 10);
            seen.AddRange(page.Devices.Select(d => d.DeviceId));
            after = page.Next;
            if (after is not null)
            {
                Assert.Equal(page.Devices[^1].DeviceId, after);
            }

            pages++;
        }
        while (after is not null);

        Assert.Equal(3, pages);
        Assert.Equal(Enumerable.Range(0, 25).Select(i => $"d{i:D2}"), seen);
    }

    [Fact]
    public async Task Next_is_null_when_the_page_holds_the_last_match()
    {
        await UpsertAsync(Device("a"), Device("b"), Device("c", DeviceStatus.Offline));

        var exact = await _store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Any, null, null, 3));
        var filtered = await _store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Online, null, null, 2));
        var cut = await _store.ListDevicesAsync("default", new DeviceQuery(StatusFilter.Any, null, null, 2));

        Assert.Null(exact.Next);
        Assert.Null(filtered.Next);
        Assert.Equal("b", cut.Next);
    }

    [Fact]
    public async Task Tenants_do_not_see_each_others_devices()
    {
        await UpsertAsync(Device("a", tenant: "acme"), Device("b", tenant: "default"));

        Assert.Equal(new[] { "a" }, await ListAsync(tenant: "acme"));
        Assert.Equal(new[] { "b" }, await ListAsync(tenant: "default"));
        Assert.Empty(await ListAsync(tenant: "nobody"));
    }

    [Fact]
    public async Task Upserting_a_device_again_replaces_it_in_listings_and_counts()
    {
        await UpsertAsync(Device("a"), Device("b"));
        await UpsertAsync(Device("a", DeviceStatus.Offline));

        Assert.Equal(new[] { "a", "b" }, await ListAsync());
        Assert.Equal(new[] { "b" }, await ListAsync(StatusFilter.Online));
        Assert.Equal(new DeviceCounts(2, 1, 2), await _store.CountDevicesAsync("default", T0));
    }

    [Fact]
    public async Task Counts_are_total_online_and_first_seen_since()
    {
        await UpsertAsync(
            Device("a", firstSeen: T0.AddDays(-2)),
            Device("b", DeviceStatus.Offline, firstSeen: T0.AddHours(-1)),
            Device("c", firstSeen: T0),
            Device("x", tenant: "acme"));

        Assert.Equal(new DeviceCounts(3, 2, 2), await _store.CountDevicesAsync("default", T0.AddDays(-1)));
        Assert.Equal(new DeviceCounts(1, 1, 1), await _store.CountDevicesAsync("acme", T0.AddDays(-1)));
        Assert.Equal(new DeviceCounts(0, 0, 0), await _store.CountDevicesAsync("nobody", T0));
    }

    [Fact]
    public async Task Removal_drops_the_device_its_sessions_and_its_counts()
    {
        var key = new DeviceKey("default", "a");
        var commit = new PartitionCommit();
        commit.Upserts.Add(Device("a"));
        commit.Upserts.Add(Device("b"));
        commit.EndedSessions.Add((key, new SessionRecord(1, T0, T0.AddMinutes(1), StatusReason.Timeout, 3)));
        await _store.CommitAsync(commit);

        var removal = new PartitionCommit();
        removal.Removals.Add(key);
        await _store.CommitAsync(removal);

        Assert.Null(await _store.ReadDeviceAsync(key));
        Assert.Equal(new[] { "b" }, await ListAsync());
        Assert.Empty(await _store.ReadEndedSessionsAsync(key, 10));
        Assert.Equal(new DeviceCounts(1, 1, 1), await _store.CountDevicesAsync("default", T0));
    }

    [Fact]
    public async Task Ended_sessions_are_read_newest_first_up_to_the_limit_and_the_number_kept()
    {
        var key = new DeviceKey("default", "a");
        for (var i = 1; i <= 5; i++)
        {
            var commit = new PartitionCommit();
            commit.EndedSessions.Add((key, new SessionRecord(i, T0.AddMinutes(i), T0.AddMinutes(i + 0.5), StatusReason.Timeout, i)));
            await _store.CommitAsync(commit);
        }

        Assert.Equal(new long[] { 5, 4, 3 }, (await _store.ReadEndedSessionsAsync(key, 10)).Select(s => s.SessionId));
        Assert.Equal(new long[] { 5, 4 }, (await _store.ReadEndedSessionsAsync(key, 2)).Select(s => s.SessionId));
        Assert.Empty(await _store.ReadEndedSessionsAsync(new DeviceKey("default", "b"), 10));
    }
}
