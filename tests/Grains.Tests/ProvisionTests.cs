using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

/// <summary>
/// Provisioning and device-token heartbeats in the grain: a provisioned device exists offline and never seen, an
/// update changes only what it names, and a heartbeat that carries a credential stamp is accepted only by the device
/// that still has that stamp; without a stamp (modes without device tokens) heartbeats behave as before.
/// </summary>
public sealed class ProvisionTests
{
    private static readonly DeviceCredential First = new(1111, [1, 2, 3]);
    private static readonly DeviceCredential Second = new(-2222, [4, 5, 6]);

    [Fact]
    public void Provisioning_creates_an_offline_never_seen_device_and_emits_one_registered_event()
    {
        var driver = new GrainDriver();

        var result = Provision(driver, new ProvisionInput(Credential: First), out var change);

        Assert.True(result.Created);
        Assert.Same(driver.Grain.State, result.Device);
        Assert.Equal(ChangeKind.State | ChangeKind.Durable, change.Kind);
        Assert.Null(change.EndedSession);
        var device = driver.State;
        Assert.Equal(("default", "agent-42", "agent-42"), (device.TenantId, device.DeviceId, device.DeviceName));
        Assert.Equal(DeviceStatus.Offline, device.Status);
        Assert.False(device.HasBeenSeen);
        Assert.Equal(0, device.SessionId);
        Assert.Equal(0, device.SessionHeartbeats);
        Assert.Equal((1L, 1L), (device.Version, device.Sequence));
        Assert.Equal(GrainDriver.T0, device.FirstSeenAt);
        Assert.Equal(GrainDriver.T0, device.StatusChangedAt);
        Assert.Null(device.Platform);
        Assert.Null(device.AppVersion);
        Assert.Empty(device.Labels);
        Assert.Empty(device.Metrics.Keys);
        Assert.Empty(device.Containers);
        Assert.Equal(TimeSpan.Zero, device.Timeout);
        Assert.Same(First, device.Credential);

        var registered = Assert.Single(driver.Events);
        Assert.Equal((DeviceEventType.Registered, 1L, GrainDriver.T0), (registered.Type, registered.Sequence, registered.Time));
        Assert.Equal(("default", "agent-42", "agent-42"), (registered.TenantId, registered.DeviceId, registered.DeviceName));
        Assert.Null(registered.Platform);

        // Offline and never seen: nothing to time out.
        Assert.Null(driver.Grain.Deadline(driver.Policy));
        driver.Advance(TimeSpan.FromDays(1));
        Assert.Equal(GrainChange.None, driver.Expire());
        Assert.Single(driver.Events);
    }

    [Fact]
    public void Provisioning_sets_the_name_timeout_and_labels_given()
    {
        var driver = new GrainDriver();
        var labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["site"] = "berlin" };

        var device = Provision(driver, new ProvisionInput("Rack 3 agent", TimeSpan.FromSeconds(45), labels, First), out _).Device;

        Assert.Equal("Rack 3 agent", device.DeviceName);
        Assert.Equal(TimeSpan.FromSeconds(45), device.Timeout);
        Assert.Equal(labels, device.Labels);
        Assert.Equal("Rack 3 agent", Assert.Single(driver.Events).DeviceName);
    }

    [Fact]
    public void An_update_changes_only_the_fields_given_adds_one_to_version_and_emits_no_event()
    {
        var driver = new GrainDriver();
        var labels = new Dictionary<string, string>(StringComparer.Ordinal) { ["site"] = "berlin" };
        Provision(driver, new ProvisionInput("first", TimeSpan.FromSeconds(45), labels, First), out _);
        var created = driver.State;
        driver.Advance(TimeSpan.FromMinutes(1));

        var renamed = Provision(driver, new ProvisionInput(DeviceName: "second"), out var change);

        Assert.False(renamed.Created);
        Assert.Equal(ChangeKind.State | ChangeKind.Durable, change.Kind);
        Assert.Equal(created with { DeviceName = "second", Version = 2 }, renamed.Device);
        Assert.Same(First, renamed.Device.Credential);

        var relabelled = new Dictionary<string, string>(StringComparer.Ordinal) { ["rack"] = "r-7" };
        Provision(driver, new ProvisionInput(Labels: relabelled), out _);
        Assert.Equal(created with { DeviceName = "second", Labels = relabelled, Version = 3 }, driver.State);

        Provision(driver, new ProvisionInput(Timeout: TimeSpan.FromSeconds(10)), out _);
        Assert.Equal(created with { DeviceName = "second", Labels = relabelled, Timeout = TimeSpan.FromSeconds(10), Version = 4 }, driver.State);

        // An empty update still counts as a change of the device (version), and still says nothing.
        Provision(driver, new ProvisionInput(), out _);
        Assert.Equal(5, driver.State.Version);
        Assert.Equal(1, driver.State.Sequence);
        Assert.Single(driver.Events);
    }

    [Fact]
    public void Updating_an_online_device_keeps_it_online_in_its_session()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);
        driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp });
        var online = driver.State;
        var events = driver.Events.Count;

        Provision(driver, new ProvisionInput(DeviceName: "renamed", Credential: Second), out _);

        Assert.Equal(online with { DeviceName = "renamed", Credential = Second, Version = online.Version + 1 }, driver.State);
        Assert.Equal(events, driver.Events.Count);
        Assert.Equal(driver.State.LastSeenAt + driver.Policy.DefaultTimeout, driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void Rotation_replaces_the_credential_and_only_the_new_stamp_is_accepted()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);

        var rotated = Provision(driver, new ProvisionInput(Credential: Second), out var change);

        Assert.False(rotated.Created);
        Assert.True(change.IsDurable);
        Assert.Same(Second, driver.State.Credential);
        Assert.Equal(2, driver.State.Version);

        var outbox = new List<DeviceEvent>();
        var stale = driver.Grain.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp }, driver.Now, driver.Policy, outbox, out var staleChange);
        Assert.Equal(HeartbeatResult.Unauthorized, stale);
        Assert.Empty(outbox);
        Assert.Equal(GrainChange.None, staleChange);

        Assert.Equal(HeartbeatOutcome.Accepted, driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = Second.Stamp }).Outcome);
        Assert.Equal(DeviceStatus.Online, driver.State.Status);
    }

    [Fact]
    public void A_heartbeat_with_the_current_stamp_brings_the_provisioned_device_online()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);
        driver.Advance(TimeSpan.FromMinutes(5));
        var seen = driver.Now;

        var result = driver.Heartbeat(new HeartbeatInput("agent-42", Platform: "linux", AppVersion: "1.0") { CredentialStamp = First.Stamp }, out var change);

        Assert.Equal(HeartbeatOutcome.Accepted, result.Outcome);
        Assert.Equal(ChangeKind.State | ChangeKind.Durable, change.Kind);
        var device = result.Device!;
        Assert.Same(driver.Grain.State, device);
        Assert.Equal(DeviceStatus.Online, device.Status);
        Assert.True(device.HasBeenSeen);
        Assert.Equal(1, device.SessionId);
        Assert.Equal(1, device.SessionHeartbeats);
        Assert.Equal((seen, seen, seen), (device.LastSeenAt, device.StatusChangedAt, device.SessionStartedAt));
        Assert.Equal(GrainDriver.T0, device.FirstSeenAt);
        Assert.Equal(("linux", "1.0"), (device.Platform, device.AppVersion));
        Assert.Equal((2L, 2L), (device.Version, device.Sequence));
        Assert.Same(First, device.Credential);

        Assert.Collection(
            driver.Events,
            registered => Assert.Equal((DeviceEventType.Registered, 1L), (registered.Type, registered.Sequence)),
            online =>
            {
                Assert.Equal((DeviceEventType.Status, 2L, seen), (online.Type, online.Sequence, online.Time));
                Assert.Equal((DeviceStatus.Online, DeviceStatus.Offline, StatusReason.Heartbeat), (online.Status, online.PreviousStatus, online.Reason));
                Assert.Equal((seen, 1L), (online.LastSeenAt, online.SessionId));
            });

        // Later heartbeats with the same stamp are ordinary heartbeats of an online device.
        driver.Advance(TimeSpan.FromSeconds(10));
        Assert.Equal(HeartbeatOutcome.Accepted, driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp }, out change).Outcome);
        Assert.Equal(ChangeKind.State, change.Kind);
        Assert.Equal((3L, 2L, 2L), (driver.State.Version, driver.State.Sequence, driver.State.SessionHeartbeats));
        Assert.Equal(2, driver.Events.Count);
    }

    [Fact]
    public void A_heartbeat_with_a_wrong_stamp_is_unauthorized_and_changes_nothing()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);
        var before = driver.State;
        driver.Advance(TimeSpan.FromSeconds(1));

        var outbox = new List<DeviceEvent>();
        var result = driver.Grain.Heartbeat(
            new HeartbeatInput("agent-42", DeviceName: "hijacked", Platform: "evil") { CredentialStamp = First.Stamp + 1 },
            driver.Now, driver.Policy, outbox, out var change);

        Assert.Equal(HeartbeatResult.Unauthorized, result);
        Assert.Null(result.Device);
        Assert.Equal(GrainChange.None, change);
        Assert.Empty(outbox);
        Assert.Same(before, driver.Grain.State);
        Assert.Equal((DeviceStatus.Offline, 1L, 1L, false), (driver.State.Status, driver.State.Version, driver.State.Sequence, driver.State.HasBeenSeen));
        Assert.Null(driver.Grain.Deadline(driver.Policy));

        // Same for an online device: it is not kept alive by someone else's heartbeats.
        driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp });
        var online = driver.State;
        var deadline = driver.Grain.Deadline(driver.Policy);
        driver.Advance(TimeSpan.FromSeconds(20));
        result = driver.Grain.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = Second.Stamp }, driver.Now, driver.Policy, outbox, out change);
        Assert.Equal(HeartbeatOutcome.Unauthorized, result.Outcome);
        Assert.Empty(outbox);
        Assert.Same(online, driver.Grain.State);
        Assert.Equal(deadline, driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void A_heartbeat_with_a_stamp_for_a_device_that_does_not_exist_is_unauthorized_and_creates_nothing()
    {
        var driver = new GrainDriver();
        var outbox = new List<DeviceEvent>();

        var result = driver.Grain.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp }, driver.Now, driver.Policy, outbox, out var change);

        Assert.Equal(HeartbeatResult.Unauthorized, result);
        Assert.Equal(GrainChange.None, change);
        Assert.Empty(outbox);
        Assert.Null(driver.Grain.State);
        Assert.Null(driver.Grain.Deadline(driver.Policy));
    }

    [Fact]
    public void A_device_without_a_credential_refuses_every_stamp()
    {
        var driver = new GrainDriver();
        driver.Heartbeat(); // registered by heartbeat (shared-secret mode): no credential
        Assert.Null(driver.State.Credential);
        var before = driver.State;

        var result = driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = 0 }, out var change);

        Assert.Equal(HeartbeatOutcome.Unauthorized, result.Outcome);
        Assert.Equal(GrainChange.None, change);
        Assert.Same(before, driver.Grain.State);
    }

    [Fact]
    public void A_heartbeat_without_a_stamp_registers_a_new_device_as_before()
    {
        var driver = new GrainDriver();

        var result = driver.Heartbeat(new HeartbeatInput("agent-42"), out var change);

        Assert.Equal(HeartbeatOutcome.Accepted, result.Outcome);
        Assert.Equal(ChangeKind.State | ChangeKind.Durable, change.Kind);
        Assert.Equal(DeviceStatus.Online, driver.State.Status);
        Assert.Null(driver.State.Credential);
        Assert.Equal((1L, 2L), (driver.State.Version, driver.State.Sequence));
        Assert.Equal([DeviceEventType.Registered, DeviceEventType.Status], driver.Events.Select(e => e.Type));
        Assert.Equal([1L, 2L], driver.Events.Select(e => e.Sequence));
    }

    [Fact]
    public void A_heartbeat_without_a_stamp_is_accepted_by_a_provisioned_device()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);

        var result = driver.Heartbeat(new HeartbeatInput("agent-42"), out var change);

        Assert.Equal(HeartbeatOutcome.Accepted, result.Outcome);
        Assert.True(change.IsDurable);
        Assert.Equal(DeviceStatus.Online, driver.State.Status);
        Assert.Same(First, driver.State.Credential);
        Assert.Equal([1L, 2L], driver.Events.Select(e => e.Sequence));
    }

    [Fact]
    public void Removing_a_never_seen_device_emits_removed_without_a_last_seen_time()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);
        driver.Advance(TimeSpan.FromMinutes(1));

        var change = driver.Remove();

        Assert.Equal(ChangeKind.State | ChangeKind.Durable | ChangeKind.Removed, change.Kind);
        Assert.Null(change.EndedSession);
        Assert.Null(driver.Grain.State);
        Assert.Collection(
            driver.Events,
            registered => Assert.Equal(DeviceEventType.Registered, registered.Type),
            removed =>
            {
                Assert.Equal((DeviceEventType.Removed, 2L, driver.Now), (removed.Type, removed.Sequence, removed.Time));
                Assert.Equal(default, removed.LastSeenAt);
            });

        // Its tokens die with it: the old stamp creates nothing.
        var outbox = new List<DeviceEvent>();
        Assert.Equal(HeartbeatResult.Unauthorized, driver.Grain.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp }, driver.Now, driver.Policy, outbox, out _));
        Assert.Empty(outbox);
        Assert.Null(driver.Grain.State);
    }

    [Fact]
    public void Removing_a_seen_device_reports_its_last_seen_time()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(Credential: First), out _);
        driver.Advance(TimeSpan.FromSeconds(5));
        driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp });
        var seen = driver.Now;
        driver.Advance(TimeSpan.FromSeconds(1));

        driver.Remove();

        Assert.Equal(
            ["Registered 1", "Status 2 Online", "Status 3 Offline", "Removed 4"],
            driver.Events.Select(e => e.Type == DeviceEventType.Status ? $"{e.Type} {e.Sequence} {e.Status}" : $"{e.Type} {e.Sequence}"));
        Assert.Equal(seen, driver.Events[^1].LastSeenAt);
        Assert.Equal(StatusReason.Removed, driver.Events[2].Reason);
    }

    [Fact]
    public void A_device_provisioned_again_after_removal_is_new_with_the_new_credential()
    {
        var driver = new GrainDriver();
        Provision(driver, new ProvisionInput(DeviceName: "old", Credential: First), out _);
        driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp });
        driver.Remove();
        driver.Advance(TimeSpan.FromMinutes(1));
        driver.Events.Clear();

        var again = Provision(driver, new ProvisionInput(Credential: Second), out _);

        Assert.True(again.Created);
        Assert.Equal(("agent-42", 1L, 1L, DeviceStatus.Offline, driver.Now), (again.Device.DeviceName, again.Device.Version, again.Device.Sequence, again.Device.Status, again.Device.FirstSeenAt));
        Assert.Same(Second, again.Device.Credential);
        Assert.Equal((DeviceEventType.Registered, 1L), (Assert.Single(driver.Events).Type, driver.Events[0].Sequence));
        Assert.Equal(HeartbeatOutcome.Unauthorized, driver.Heartbeat(new HeartbeatInput("agent-42") { CredentialStamp = First.Stamp }).Outcome);
    }

    private static ProvisionResult Provision(GrainDriver driver, ProvisionInput input, out GrainChange change) =>
        driver.Grain.Provision(input, driver.Now, driver.Events, out change);
}
