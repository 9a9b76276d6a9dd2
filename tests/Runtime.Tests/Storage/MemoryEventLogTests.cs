using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;
using Presence.Runtime.Storage.Memory;

namespace Presence.Runtime.Tests.Storage;

public sealed class MemoryEventLogTests
{
    private const long Epoch = 0x5eed;

    private readonly MemoryEventLog _log = new(capacity: 10, epoch: Epoch);

    private EventCursor Start => new(Epoch, 0);

    [Fact]
    public async Task Empty_log_starts_at_position_zero()
    {
        Assert.Equal(new EventCursor(Epoch, 0), _log.Head);
        Assert.Equal(CursorState.Valid, await _log.ValidateAsync(Start));

        var page = await _log.ReadAsync("default", Start, 100);

        Assert.Equal(CursorState.Valid, page.State);
        Assert.Empty(page.Events);
        Assert.Equal(Start, page.Next);
    }

    [Fact]
    public async Task Appended_events_get_positions_one_to_n_in_order()
    {
        var first = Events.Many(3);
        var second = Events.Many(2);

        _log.Append(first);
        _log.Append(second);

        Assert.Equal(new long[] { 1, 2, 3, 4, 5 }, first.Concat(second).Select(e => e.Position));
        Assert.Equal(new EventCursor(Epoch, 5), _log.Head);
        var page = await _log.ReadAsync("default", Start, 100);
        Assert.Equal(first.Concat(second), page.Events);
        Assert.Equal(new EventCursor(Epoch, 5), page.Next);
    }

    [Fact]
    public async Task Reading_from_a_cursor_returns_only_later_events()
    {
        var events = Events.Many(6);
        _log.Append(events);

        var page = await _log.ReadAsync("default", new EventCursor(Epoch, 4), 100);

        Assert.Equal(events.Skip(4), page.Events);
        Assert.Empty((await _log.ReadAsync("default", page.Next, 100)).Events);
    }

    [Fact]
    public async Task Pages_of_a_limit_continue_where_the_last_ended()
    {
        var events = Events.Many(7);
        _log.Append(events);

        var first = await _log.ReadAsync("default", Start, 3);
        var second = await _log.ReadAsync("default", first.Next, 3);
        var third = await _log.ReadAsync("default", second.Next, 3);

        Assert.Equal(events.Take(3), first.Events);
        Assert.Equal(new EventCursor(Epoch, 3), first.Next);
        Assert.Equal(events.Skip(3).Take(3), second.Events);
        Assert.Equal(events.Skip(6), third.Events);
        Assert.Equal(_log.Head, third.Next);
    }

    [Fact]
    public async Task Readers_see_only_their_tenants_events_and_move_past_the_others()
    {
        _log.Append([Events.Status("acme", "x"), Events.Status("default", "a"), Events.Status("acme", "y"), Events.Status("other", "z")]);

        var page = await _log.ReadAsync("acme", Start, 100);
        var none = await _log.ReadAsync("nobody", Start, 100);

        Assert.Equal(new[] { "x", "y" }, page.Events.Select(e => e.DeviceId));
        Assert.All(page.Events, e => Assert.Equal("acme", e.TenantId));
        Assert.Equal(_log.Head, page.Next);
        Assert.Empty(none.Events);
        Assert.Equal(_log.Head, none.Next);
    }

    [Fact]
    public async Task Device_filter_returns_only_that_devices_events()
    {
        _log.Append([Events.Status("default", "a", 1), Events.Status("default", "b", 1), Events.Status("default", "a", 2), Events.Status("acme", "a", 1)]);

        var page = await _log.ReadAsync("default", Start, 100, deviceId: "a");

        Assert.Equal(new long[] { 1, 3 }, page.Events.Select(e => e.Position));
        Assert.Equal(_log.Head, page.Next);
    }

    [Fact]
    public async Task Cursor_older_than_retention_is_expired_and_the_oldest_retained_is_valid()
    {
        var events = Events.Many(15);
        _log.Append(events);

        var oldestValid = new EventCursor(Epoch, 5);
        var expired = new EventCursor(Epoch, 4);

        Assert.Equal(CursorState.Valid, await _log.ValidateAsync(oldestValid));
        Assert.Equal(events.Skip(5), (await _log.ReadAsync("default", oldestValid, 100)).Events);
        Assert.Equal(CursorState.Expired, await _log.ValidateAsync(expired));
        Assert.Equal(CursorState.Expired, await _log.ValidateAsync(Start));
        var page = await _log.ReadAsync("default", expired, 100);
        Assert.Equal(CursorState.Expired, page.State);
        Assert.Empty(page.Events);
    }

    [Fact]
    public async Task Cursor_of_another_epoch_is_expired()
    {
        _log.Append(Events.Many(3));

        Assert.Equal(CursorState.Expired, await _log.ValidateAsync(new EventCursor(Epoch + 1, 1)));
        Assert.Equal(CursorState.Expired, await _log.ValidateAsync(new EventCursor(Epoch + 1, 0)));
        Assert.Equal(CursorState.Expired, (await _log.ReadAsync("default", new EventCursor(Epoch - 1, 2), 10)).State);
    }

    [Fact]
    public async Task Cursor_beyond_the_head_is_unknown()
    {
        _log.Append(Events.Many(3));

        Assert.Equal(CursorState.Valid, await _log.ValidateAsync(new EventCursor(Epoch, 3)));
        Assert.Equal(CursorState.Unknown, await _log.ValidateAsync(new EventCursor(Epoch, 4)));
        var page = await _log.ReadAsync("default", new EventCursor(Epoch, 400), 10);
        Assert.Equal(CursorState.Unknown, page.State);
        Assert.Empty(page.Events);
    }

    [Fact]
    public async Task Wait_completes_when_an_event_is_appended()
    {
        _log.Append(Events.Many(2));
        var head = _log.Head;

        var wait = _log.WaitAsync(head, CancellationToken.None);
        Assert.False(wait.IsCompleted);

        _log.Append(Events.Many(1));

        await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Single((await _log.ReadAsync("default", head, 10)).Events);
    }

    [Fact]
    public async Task Wait_with_a_cancellable_token_completes_when_an_event_is_appended()
    {
        using var cancellation = new CancellationTokenSource();
        var wait = _log.WaitAsync(_log.Head, cancellation.Token);
        Assert.False(wait.IsCompleted);

        _log.Append(Events.Many(1));

        await wait.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(wait.IsCompletedSuccessfully);
    }

    [Fact]
    public void Wait_behind_the_head_completes_at_once()
    {
        _log.Append(Events.Many(2));

        Assert.True(_log.WaitAsync(new EventCursor(Epoch, 1), CancellationToken.None).IsCompletedSuccessfully);
        Assert.True(_log.WaitAsync(new EventCursor(Epoch + 1, 2), CancellationToken.None).IsCompletedSuccessfully);
    }

    [Fact]
    public async Task Wait_can_be_cancelled()
    {
        using var cancellation = new CancellationTokenSource();
        var wait = _log.WaitAsync(_log.Head, cancellation.Token);

        await cancellation.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait);
    }

    [Fact]
    public void An_event_cannot_be_appended_twice()
    {
        var events = Events.Many(1);
        _log.Append(events);

        Assert.Throws<InvalidOperationException>(() => _log.Append(events));
    }

    [Fact]
    public void Concurrent_appends_get_distinct_gapless_positions()
    {
        var log = new MemoryEventLog(capacity: 100_000, epoch: Epoch);
        var batches = Enumerable.Range(0, 200).Select(_ => Events.Many(10)).ToArray();

        Parallel.ForEach(batches, batch => log.Append(batch));

        var positions = batches.SelectMany(b => b.Select(e => e.Position)).Order().ToArray();
        Assert.Equal(Enumerable.Range(1, 2000).Select(i => (long)i), positions);
        Assert.All(batches, batch => Assert.Equal(Enumerable.Range(0, 10).Select(i => batch[0].Position + i), batch.Select(e => e.Position)));
    }
}
