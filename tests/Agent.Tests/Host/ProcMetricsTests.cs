using Presence.Agent.Host;

namespace Presence.Agent.Tests.Host;

/// <summary>Metrics from a <c>/proc</c> tree: captured samples in a temporary directory, and the live machine once.</summary>
public sealed class ProcMetricsTests : IDisposable
{
    private const string Stat = """
        cpu  2787569 0 434517 1044576 3833 0 87172 124629 0 0
        cpu0 1382513 0 215425 536154 937 0 43082 63427 0 0
        intr 123 0 0
        ctxt 45678
        """;

    private const string MemInfo = """
        MemTotal:       24684096 kB
        MemFree:        23580916 kB
        MemAvailable:   18513072 kB
        Buffers:           15712 kB
        Cached:           648868 kB
        """;

    private readonly string _root = Directory.CreateTempSubdirectory("presence-proc-").FullName;

    [Fact]
    public void A_captured_proc_tree_gives_every_metric()
    {
        Write(Stat, MemInfo, "22329.67 10445.76\n", "1.31 3.01 4.68 6/166 5869\n");

        var metrics = new ProcMetricsReader(_root).Read();

        // Since boot: busy = everything but idle (1044576) and iowait (3833).
        var total = 2787569 + 434517 + 1044576 + 3833 + 87172 + 124629;
        Assert.Equal(Math.Round((total - 1044576 - 3833) * 100.0 / total, 2), metrics.CpuPct);
        Assert.Equal(25.0, metrics.MemPct);
        Assert.Equal((24684096L - 18513072L) * 1024, metrics.MemUsedBytes);
        Assert.Equal(22329.67, metrics.UptimeS);
        Assert.Equal(1.31, metrics.Load1);
    }

    [Fact]
    public void Cpu_usage_is_the_busy_share_between_two_snapshots()
    {
        Write("cpu  100 0 100 700 100 0 0 0 0 0\n", MemInfo, "1\n", "0\n");
        var reader = new ProcMetricsReader(_root);
        Assert.Equal(20, reader.Read().CpuPct);

        // 1000 ticks later: 300 user, 100 system, 500 idle, 100 iowait: 40 % busy.
        Write("cpu  400 0 200 1200 200 0 0 0 0 0\n", MemInfo, "11\n", "0\n");
        Assert.Equal(40, reader.Read().CpuPct);

        // Guest time is inside user time already: counting it again would inflate usage.
        Write("cpu  1400 0 200 1200 200 0 0 0 900 0\n", MemInfo, "21\n", "0\n");
        Assert.Equal(100, reader.Read().CpuPct);
    }

    [Fact]
    public void A_window_shorter_than_a_cpu_second_repeats_the_last_value()
    {
        Write("cpu  100 0 100 700 100 0 0 0 0 0\n", MemInfo, "1\n", "0\n");
        var reader = new ProcMetricsReader(_root);
        Assert.Equal(20, reader.Read().CpuPct);

        Write("cpu  150 0 100 740 100 0 0 0 0 0\n", MemInfo, "1\n", "0\n");
        Assert.Equal(20, reader.Read().CpuPct);

        // The window kept growing from the first sample: 150 busy of 200 ticks.
        Write("cpu  250 0 100 750 100 0 0 0 0 0\n", MemInfo, "1\n", "0\n");
        Assert.Equal(75, reader.Read().CpuPct);
    }

    [Fact]
    public void Counters_that_go_backwards_keep_the_last_value()
    {
        Write("cpu  100 0 100 700 100 0 0 0 0 0\n", MemInfo, "1\n", "0\n");
        var reader = new ProcMetricsReader(_root);
        reader.Read();
        Write("cpu  10 0 10 70 10 0 0 0 0 0\n", MemInfo, "1\n", "0\n");

        Assert.Equal(20, reader.Read().CpuPct);
    }

    [Fact]
    public void Without_MemAvailable_free_buffers_and_cache_count_as_available()
    {
        Write(Stat, "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\n", "1\n", "0\n");

        var metrics = new ProcMetricsReader(_root).Read();

        Assert.Equal(75, metrics.MemPct);
        Assert.Equal(750 * 1024, metrics.MemUsedBytes);
    }

    [Theory]
    [InlineData("stat", "cpu  12 x 3 4\n")]
    [InlineData("stat", "cpu  12 3\n")]
    [InlineData("stat", "intr 1 2 3\n")]
    [InlineData("stat", "")]
    [InlineData("meminfo", "MemTotal: lots kB\nMemAvailable: 1 kB\n")]
    [InlineData("meminfo", "MemTotal: 0 kB\nMemAvailable: 0 kB\n")]
    [InlineData("meminfo", "MemTotal: 100 kB\nMemAvailable: 200 kB\n")]
    [InlineData("meminfo", "MemFree: 100 kB\n")]
    [InlineData("meminfo", "MemTotal: 99999999999999999999 kB\n")]
    [InlineData("uptime", "soon\n")]
    [InlineData("uptime", "")]
    [InlineData("uptime", "-5 3\n")]
    [InlineData("loadavg", "NaN 1 1\n")]
    [InlineData("loadavg", "\u0000\u0001")]
    public void A_malformed_file_costs_its_metric_only(string file, string content)
    {
        Write(Stat, MemInfo, "22329.67 10445.76\n", "1.31 3.01 4.68 6/166 5869\n");
        File.WriteAllText(Path.Combine(_root, file), content);

        var metrics = new ProcMetricsReader(_root).Read();

        Assert.Equal(file == "stat", metrics.CpuPct is null);
        Assert.Equal(file == "meminfo", metrics.MemPct is null);
        Assert.Equal(file == "meminfo", metrics.MemUsedBytes is null);
        Assert.Equal(file == "uptime", metrics.UptimeS is null);
        Assert.Equal(file == "loadavg", metrics.Load1 is null);
    }

    [Fact]
    public void A_missing_proc_tree_gives_no_metrics_and_no_error()
    {
        Assert.Equal(HostMetrics.None, new ProcMetricsReader(Path.Combine(_root, "absent")).Read());
    }

    [Fact]
    public void The_live_machine_gives_plausible_metrics()
    {
        var reader = new ProcMetricsReader("/proc");
        reader.Read();
        var metrics = reader.Read();

        Assert.InRange(metrics.CpuPct!.Value, 0, 100);
        Assert.InRange(metrics.MemPct!.Value, double.Epsilon, 100);
        Assert.True(metrics.MemUsedBytes > 0);
        Assert.True(metrics.UptimeS > 0);
        Assert.True(metrics.Load1 >= 0);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private void Write(string stat, string meminfo, string uptime, string loadavg)
    {
        File.WriteAllText(Path.Combine(_root, "stat"), stat);
        File.WriteAllText(Path.Combine(_root, "meminfo"), meminfo);
        File.WriteAllText(Path.Combine(_root, "uptime"), uptime);
        File.WriteAllText(Path.Combine(_root, "loadavg"), loadavg);
    }
}
