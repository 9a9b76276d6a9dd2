using System.Text;
using Presence.Grains.Abstractions;
using Presence.Runtime.Partitioning;

namespace Presence.Runtime.Tests.Partitioning;

public sealed class PartitionHashTests
{
    private const int Partitions = 1024;

    /// <summary>
    /// Computed once and pinned: every silo and gateway, of every version, must place a device in the same
    /// partition. A change here moves devices between partitions (and durable partition data with them).
    /// </summary>
    [Theory]
    [InlineData("default", "agent-42", 12, 54284, 0)]
    [InlineData("default", "a", 832, 16192, 2)]
    [InlineData("acme", "agent-42", 551, 23079, 5)]
    [InlineData("default", "device-0", 547, 10787, 4)]
    [InlineData("default", "Z@host:1.x_-", 179, 21683, 4)]
    public void Partition_of_a_device_never_changes(string tenant, string deviceId, int of1024, int of65536, int of7)
    {
        var key = new DeviceKey(tenant, deviceId);

        Assert.Equal(of1024, PartitionHash.Of(key, 1024));
        Assert.Equal(of65536, PartitionHash.Of(key, 65536));
        Assert.Equal(of7, PartitionHash.Of(key, 7));
    }

    [Fact]
    public void Hash_is_fnv1a_64_of_the_utf16_tenant_nul_device_id_finished_with_murmur3_fmix64()
    {
        for (var i = 0; i < 1000; i++)
        {
            var key = new DeviceKey(i % 3 == 0 ? "default" : $"tenant-{i % 7}", $"dev-{i * 7919}:x@{i}");
            var bytes = Encoding.Unicode.GetBytes(key.TenantId + "\0" + key.DeviceId);
            var hash = 14695981039346656037UL;
            foreach (var b in bytes)
            {
                hash = (hash ^ b) * 1099511628211UL;
            }

            hash ^= hash >> 33;
            hash *= 0xff51afd7ed558ccdUL;
            hash ^= hash >> 33;
            hash *= 0xc4ceb53fe63a5df3UL;
            hash ^= hash >> 33;

            Assert.Equal((int)(hash % Partitions), PartitionHash.Of(key, Partitions));
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(7)]
    [InlineData(1024)]
    [InlineData(65536)]
    public void Partition_is_within_range(int partitions)
    {
        for (var i = 0; i < 10_000; i++)
        {
            var partition = PartitionHash.Of(new DeviceKey("default", $"device-{i}"), partitions);

            Assert.InRange(partition, 0, partitions - 1);
        }
    }

    [Fact]
    public void Partition_count_must_be_positive()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => PartitionHash.Of(new DeviceKey("default", "a"), 0));
    }

    [Fact]
    public void Tenant_is_part_of_the_key()
    {
        var moved = 0;
        for (var i = 0; i < 1000; i++)
        {
            if (PartitionHash.Of(new DeviceKey("default", $"agent-{i}"), Partitions) != PartitionHash.Of(new DeviceKey("acme", $"agent-{i}"), Partitions))
            {
                moved++;
            }
        }

        Assert.True(moved > 900, $"only {moved} of 1000 devices land elsewhere in another tenant");
    }

    [Fact]
    public void Sequential_device_ids_spread_evenly_over_1024_partitions()
    {
        AssertEven(Enumerable.Range(0, 100_000).Select(i => new DeviceKey("default", $"device-{i}")));
    }

    [Fact]
    public void Zero_padded_device_ids_spread_evenly_over_1024_partitions()
    {
        AssertEven(Enumerable.Range(0, 100_000).Select(i => new DeviceKey("default", $"agent-{i:D6}")));
    }

    [Fact]
    public void Guid_device_ids_spread_evenly_over_1024_partitions()
    {
        var random = new Random(1234);
        var bytes = new byte[16];
        AssertEven(Enumerable.Range(0, 100_000).Select(_ =>
        {
            random.NextBytes(bytes);
            return new DeviceKey("default", new Guid(bytes).ToString());
        }));
    }

    [Fact]
    public void Devices_of_many_tenants_spread_evenly_over_1024_partitions()
    {
        AssertEven(Enumerable.Range(0, 100_000).Select(i => new DeviceKey($"tenant-{i % 10}", $"dev-{i / 10}")));
    }

    /// <summary>Every partition holds between half and one and a half times its fair share.</summary>
    private static void AssertEven(IEnumerable<DeviceKey> keys)
    {
        var counts = new int[Partitions];
        var total = 0;
        foreach (var key in keys)
        {
            counts[PartitionHash.Of(key, Partitions)]++;
            total++;
        }

        var fair = (double)total / Partitions;
        var min = counts.Min();
        var max = counts.Max();
        Assert.True(min >= fair * 0.5 && max <= fair * 1.5,
            $"partition sizes range from {min} to {max}; a fair share is {fair:F1} (allowed {fair * 0.5:F0}-{fair * 1.5:F0})");
    }
}
