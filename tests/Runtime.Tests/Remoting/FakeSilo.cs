using System.Collections.Concurrent;
using Presence.Grains.Abstractions;
using Presence.Runtime.Cluster;
using Presence.Runtime.Remoting;
using Presence.Runtime.Storage;

namespace Presence.Runtime.Tests.Remoting;

/// <summary>
/// A stand-in for the silo behind the transport: it records what it was called with and answers predictably.
/// Heartbeats can be held (<see cref="HoldHeartbeats"/>) and released by the test in any order.
/// </summary>
internal sealed class FakeSilo : ISiloCalls
{
    private readonly ConcurrentQueue<TaskCompletionSource> _arrivalWaiters = new();
    private int _heartbeats;

    public ConcurrentQueue<(string Method, DeviceKey Key, object? Argument)> Calls { get; } = new();

    /// <summary>Held heartbeats in arrival order; complete them to reply.</summary>
    public ConcurrentQueue<(DeviceKey Key, TaskCompletionSource<HeartbeatResult> Reply)> Held { get; } = new();

    public bool HoldHeartbeats { get; set; }

    /// <summary>Resolves once <paramref name="count"/> heartbeats have arrived.</summary>
    public async Task HeartbeatsArrivedAsync(int count)
    {
        while (Volatile.Read(ref _heartbeats) < count)
        {
            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _arrivalWaiters.Enqueue(waiter);
            if (Volatile.Read(ref _heartbeats) >= count)
            {
                break;
            }

            await waiter.Task.WaitAsync(TimeSpan.FromSeconds(30));
        }
    }

    public static DeviceRecord Device(DeviceKey key) => new()
    {
        TenantId = key.TenantId,
        DeviceId = key.DeviceId,
        DeviceName = "name-of-" + key.DeviceId,
        Status = DeviceStatus.Online,
        SessionId = key.DeviceId.Length,
        Version = 1,
    };

    /// <summary>Device ids that make a call fail, each with another error, synchronously or not.</summary>
    private static Exception? Failure(DeviceKey key) => key.DeviceId switch
    {
        "not-owner" => new NotOwnerException(7),
        "fenced" => new PartitionFencedException(9, 3),
        "storage-down" => new StorageUnavailableException("storage does not answer"),
        "bug" => new InvalidOperationException("the grain broke"),
        _ => null,
    };

    private static ValueTask<T> Answer<T>(DeviceKey key, T result) =>
        Failure(key) is { } error ? ValueTask.FromException<T>(error) : ValueTask.FromResult(result);

    public ValueTask<HeartbeatResult> HeartbeatAsync(DeviceKey key, HeartbeatInput input, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(HeartbeatAsync), key, input));
        ValueTask<HeartbeatResult> reply;
        if (HoldHeartbeats)
        {
            var held = new TaskCompletionSource<HeartbeatResult>(TaskCreationOptions.RunContinuationsAsynchronously);
            Held.Enqueue((key, held));
            reply = new ValueTask<HeartbeatResult>(held.Task);
        }
        else
        {
            reply = Answer(key, input.DeviceName == "limit-me" ? HeartbeatResult.Limited(TimeSpan.FromSeconds(3)) : HeartbeatResult.Accepted(Device(key)));
        }

        Interlocked.Increment(ref _heartbeats);
        while (_arrivalWaiters.TryDequeue(out var waiter))
        {
            waiter.TrySetResult();
        }

        return reply;
    }

    public ValueTask<ProvisionResult> ProvisionAsync(DeviceKey key, ProvisionInput input, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(ProvisionAsync), key, input));
        return Answer(key, new ProvisionResult(RemotingTestData.FullDevice(key.DeviceId) with { TenantId = key.TenantId }, Created: true));
    }

    public ValueTask<DeviceRecord?> GetAsync(DeviceKey key, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(GetAsync), key, null));
        if (key.DeviceId == "bug-thrown")
        {
            throw new InvalidOperationException("thrown before any await");
        }

        return key.DeviceId == "missing" ? ValueTask.FromResult<DeviceRecord?>(null) : Answer<DeviceRecord?>(key, RemotingTestData.FullDevice(key.DeviceId));
    }

    public ValueTask<bool> RemoveAsync(DeviceKey key, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(RemoveAsync), key, null));
        return Answer(key, key.DeviceId != "missing");
    }

    public ValueTask<IReadOnlyList<SessionRecord>?> GetSessionsAsync(DeviceKey key, int limit, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(GetSessionsAsync), key, limit));
        IReadOnlyList<SessionRecord> sessions = [.. Enumerable.Range(0, limit).Select(i => new SessionRecord(i + 1, DateTime.UnixEpoch.AddDays(i), null, null, i))];
        return Answer(key, key.DeviceId == "missing" ? null : sessions);
    }

    public async ValueTask ChannelOpenedAsync(DeviceKey key, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(ChannelOpenedAsync), key, null));
        await Task.Yield();
    }

    public ValueTask ChannelClosedAsync(DeviceKey key, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(ChannelClosedAsync), key, null));
        return Failure(key) is { } error ? ValueTask.FromException(error) : ValueTask.CompletedTask;
    }

    public ValueTask<bool> CommandResultAsync(DeviceKey key, CommandResult result, CancellationToken cancellationToken = default)
    {
        Calls.Enqueue((nameof(CommandResultAsync), key, result));
        return Answer(key, result.Ok);
    }

    public long HeartbeatsLastMinute(string tenantId)
    {
        Calls.Enqueue((nameof(HeartbeatsLastMinute), new DeviceKey(tenantId, ""), null));
        return tenantId == "busy" ? long.MaxValue : 0;
    }
}
