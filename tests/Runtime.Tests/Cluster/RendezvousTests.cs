using Presence.Runtime.Cluster;

namespace Presence.Runtime.Tests.Cluster;

public sealed class RendezvousTests
{
    private const int Partitions = 1024;

    [Fact]
    public void Every_process_computes_the_same_targets_whatever_order_it_lists_the_silos_in()
    {
        var a = new Rendezvous(["silo-a", "silo-b", "silo-c"]);
        var b = new Rendezvous(["silo-c", "silo-a", "silo-b"]);

        Assert.All(Enumerable.Range(0, Partitions), p => Assert.Equal(a.Target(p), b.Target(p)));
    }

    [Fact]
    public void Partitions_spread_evenly_over_the_silos()
    {
        var silos = Enumerable.Range(0, 4).Select(i => $"silo-{Guid.NewGuid():N}"[..13]).ToList();
        var placement = new Rendezvous(silos);

        var counts = Enumerable.Range(0, Partitions).CountBy(p => placement.Target(p)!).ToDictionary();

        Assert.Equal(4, counts.Count);
        Assert.All(counts.Values, count => Assert.InRange(count, Partitions / 4 * 0.75, Partitions / 4 * 1.25));
    }

    [Fact]
    public void A_joining_silo_takes_partitions_only_for_itself_and_a_leaving_one_moves_only_its_own()
    {
        var before = new Rendezvous(["silo-a", "silo-b", "silo-c"]);
        var joined = new Rendezvous(["silo-a", "silo-b", "silo-c", "silo-d"]);
        var left = new Rendezvous(["silo-a", "silo-c"]);

        foreach (var p in Enumerable.Range(0, Partitions))
        {
            Assert.True(joined.Target(p) == before.Target(p) || joined.Target(p) == "silo-d");
            Assert.True(left.Target(p) == before.Target(p) || before.Target(p) == "silo-b");
        }
    }

    [Fact]
    public void Without_live_silos_no_partition_has_a_target()
    {
        Assert.Null(new Rendezvous([]).Target(0));
    }

    [Theory]
    [InlineData("127.0.0.1:0", true)]
    [InlineData("0.0.0.0:7070", true)]
    [InlineData("[::1]:7070", true)]
    [InlineData("127.0.0.1", false)]
    [InlineData("localhost:7070", false)]
    [InlineData("127.0.0.1:", false)]
    [InlineData("127.0.0.1:70000", false)]
    [InlineData("", false)]
    public void The_silo_endpoint_is_an_ip_address_and_a_port(string text, bool valid)
    {
        Assert.Equal(valid, SiloEndpoint.TryParse(text, out _));
    }
}
