using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

public sealed class DeviceGrainMetricsTests
{
    private static HeartbeatInput WithMetrics(double cpu, double mem) =>
        new("agent-42", Metrics: new MetricSet(["cpu_pct", "mem_pct"], [cpu, mem]));

    [Fact]
    public void Repeated_metric_keys_reuse_the_previous_key_array()
    {
        var driver = new GrainDriver();
        driver.Heartbeat(WithMetrics(10, 20));
        var firstKeys = driver.State.Metrics.Keys;

        driver.Heartbeat(WithMetrics(11, 21));

        Assert.Same(firstKeys, driver.State.Metrics.Keys);
        Assert.Equal(new[] { 11.0, 21.0 }, driver.State.Metrics.Values);
    }

    [Fact]
    public void Different_metric_keys_replace_the_key_array()
    {
        var driver = new GrainDriver();
        driver.Heartbeat(WithMetrics(10, 20));

        driver.Heartbeat(new HeartbeatInput("agent-42", Metrics: new MetricSet(["cpu_pct", "load1"], [1, 2])));

        Assert.Equal(new[] { "cpu_pct", "load1" }, driver.State.Metrics.Keys);
        Assert.Equal(new[] { 1.0, 2.0 }, driver.State.Metrics.Values);
    }

    [Fact]
    public void Omitted_metrics_and_containers_keep_the_previous_ones()
    {
        var driver = new GrainDriver();
        driver.Heartbeat(WithMetrics(10, 20) with { Containers = [new ContainerInfo("web", "nginx:1.27", "running", "80/tcp")] });
        var metrics = driver.State.Metrics;
        var containers = driver.State.Containers;

        driver.Heartbeat();

        Assert.Same(metrics.Keys, driver.State.Metrics.Keys);
        Assert.Same(metrics.Values, driver.State.Metrics.Values);
        Assert.Same(containers, driver.State.Containers);
        Assert.Equal(2, driver.State.Version);
    }

    [Fact]
    public void Equal_containers_keep_the_previous_list_and_changed_ones_replace_it()
    {
        var driver = new GrainDriver();
        driver.Heartbeat(new HeartbeatInput("agent-42", Containers: [new ContainerInfo("web", "nginx:1.27", "running", "80/tcp")]));
        var containers = driver.State.Containers;

        driver.Heartbeat(new HeartbeatInput("agent-42", Containers: [new ContainerInfo("web", "nginx:1.27", "running", "80/tcp")]));
        Assert.Same(containers, driver.State.Containers);

        driver.Heartbeat(new HeartbeatInput("agent-42", Containers: [new ContainerInfo("web", "nginx:1.27", "exited", "")]));
        Assert.Equal("exited", Assert.Single(driver.State.Containers).State);

        driver.Heartbeat(new HeartbeatInput("agent-42", Containers: []));
        Assert.Empty(driver.State.Containers);
    }

    [Fact]
    public void WithKeysOf_shares_the_key_array_only_when_the_keys_are_equal()
    {
        var previous = new MetricSet(["a", "b"], [1, 2]);
        var same = new MetricSet(["a", "b"], [3, 4]);
        var reordered = new MetricSet(["b", "a"], [3, 4]);
        var fewer = new MetricSet(["a"], [3]);

        var shared = same.WithKeysOf(previous);

        Assert.Same(previous.Keys, shared.Keys);
        Assert.Same(same.Values, shared.Values);
        Assert.NotSame(previous.Keys, reordered.WithKeysOf(previous).Keys);
        Assert.Equal(new[] { "b", "a" }, reordered.WithKeysOf(previous).Keys);
        Assert.Same(reordered.Values, reordered.WithKeysOf(previous).Values);
        Assert.Equal(new[] { "a" }, fewer.WithKeysOf(previous).Keys);
        Assert.Same(shared.Keys, shared.WithKeysOf(previous).Keys);
    }

    [Fact]
    public void Equal_key_sets_of_different_devices_share_one_array()
    {
        var first = new MetricSet(["shared_a", "shared_b"], [1, 2]).WithKeysOf(null);
        var second = new MetricSet([new string("shared_a"), "shared_b"], [3, 4]).WithKeysOf(null);

        Assert.Same(first.Keys, second.Keys);
        Assert.Equal(new[] { 3.0, 4.0 }, second.Values);
    }

    [Fact]
    public void MetricSet_rejects_keys_and_values_of_different_length()
    {
        Assert.Throws<ArgumentException>(() => new MetricSet(["a", "b"], [1]));
    }
}
