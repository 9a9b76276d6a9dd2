using Presence.Runtime.Timers;

namespace Presence.Runtime.Tests.Timers;

public sealed class TimingWheelTests
{
    private static readonly DateTime T0 = new(2026, 11, 22, 10, 0, 0, DateTimeKind.Utc);
    private static readonly TimeSpan Tick = TimeSpan.FromSeconds(1);

    private readonly TimingWheel<string> _wheel = new(Tick, 8);

    private List<string> AdvanceTo(DateTime now)
    {
        var due = new List<TimingWheel<string>.Entry>();
        _wheel.Advance(now, due);
        return due.Select(e => e.Item).ToList();
    }

    private static DateTime At(double seconds) => T0 + TimeSpan.FromSeconds(seconds);

    [Fact]
    public void Entry_fires_at_the_first_tick_at_or_after_its_due_time_and_not_before()
    {
        AdvanceTo(T0);
        _wheel.Schedule("a", At(2.5));

        Assert.Empty(AdvanceTo(At(2.5)));
        Assert.Empty(AdvanceTo(At(3) - TimeSpan.FromTicks(1)));
        Assert.Equal("a", Assert.Single(AdvanceTo(At(3))));
        Assert.Empty(AdvanceTo(At(4)));
    }

    [Fact]
    public void Entry_due_exactly_on_a_tick_fires_at_that_tick()
    {
        AdvanceTo(T0);
        _wheel.Schedule("a", At(3));

        Assert.Empty(AdvanceTo(At(2.999)));
        Assert.Equal("a", Assert.Single(AdvanceTo(At(3))));
    }

    [Fact]
    public void Entry_one_tick_past_a_tick_boundary_waits_for_the_next_tick()
    {
        AdvanceTo(T0);
        _wheel.Schedule("a", At(3) + TimeSpan.FromTicks(1));

        Assert.Empty(AdvanceTo(At(3.999)));
        Assert.Equal("a", Assert.Single(AdvanceTo(At(4))));
    }

    [Fact]
    public void Schedule_returns_the_tick_the_entry_fires_with()
    {
        AdvanceTo(T0);
        var tick = _wheel.Schedule("a", At(2.5));

        var due = new List<TimingWheel<string>.Entry>();
        _wheel.Advance(At(3), due);

        Assert.Equal(_wheel.TickOf(At(3)), tick);
        Assert.Equal(new TimingWheel<string>.Entry("a", tick), Assert.Single(due));
    }

    [Fact]
    public void Entries_beyond_one_revolution_fire_in_their_own_round()
    {
        AdvanceTo(T0);
        _wheel.Schedule("near", At(2));
        _wheel.Schedule("far", At(2 + 8));
        _wheel.Schedule("farther", At(2 + 24));

        for (var s = 1; s <= 30; s++)
        {
            var fired = AdvanceTo(At(s));
            switch (s)
            {
                case 2:
                    Assert.Equal("near", Assert.Single(fired));
                    break;
                case 10:
                    Assert.Equal("far", Assert.Single(fired));
                    break;
                case 26:
                    Assert.Equal("farther", Assert.Single(fired));
                    break;
                default:
                    Assert.Empty(fired);
                    break;
            }
        }

        Assert.Equal(0, _wheel.Count);
    }

    [Fact]
    public void Large_time_jump_fires_everything_due_once_and_keeps_the_rest()
    {
        AdvanceTo(T0);
        for (var i = 1; i <= 100; i++)
        {
            _wheel.Schedule($"e{i}", At(i * 0.7));
        }

        _wheel.Schedule("later", At(3600 + 30));

        var fired = AdvanceTo(At(3600));

        Assert.Equal(100, fired.Count);
        Assert.Equal(100, fired.Distinct().Count());
        Assert.Equal(1, _wheel.Count);
        Assert.Empty(AdvanceTo(At(3629)));
        Assert.Equal("later", Assert.Single(AdvanceTo(At(3630))));
        Assert.Equal(0, _wheel.Count);
    }

    [Fact]
    public void Jump_of_several_revolutions_fires_only_entries_that_are_due()
    {
        AdvanceTo(T0);
        _wheel.Schedule("a", At(5));
        _wheel.Schedule("b", At(30));

        Assert.Equal("a", Assert.Single(AdvanceTo(At(20))));
        Assert.Empty(AdvanceTo(At(29)));
        Assert.Equal("b", Assert.Single(AdvanceTo(At(30))));
    }

    [Fact]
    public void Entries_scheduled_before_the_first_advance_fire_when_due()
    {
        _wheel.Schedule("past", At(-100));
        _wheel.Schedule("soon", At(1));
        _wheel.Schedule("later", At(50));

        Assert.Equal(new[] { "past", "soon" }, AdvanceTo(At(5)).Order(StringComparer.Ordinal));
        Assert.Equal("later", Assert.Single(AdvanceTo(At(50))));
    }

    [Fact]
    public void Entry_scheduled_in_the_past_fires_at_the_next_tick()
    {
        AdvanceTo(At(10));

        var tick = _wheel.Schedule("late", At(3));

        Assert.Equal(_wheel.TickOf(At(11)), tick);
        Assert.Empty(AdvanceTo(At(10.5)));
        Assert.Equal("late", Assert.Single(AdvanceTo(At(11))));
    }

    [Fact]
    public void Advancing_backwards_fires_nothing_and_loses_nothing()
    {
        AdvanceTo(At(10));
        _wheel.Schedule("a", At(12));

        Assert.Empty(AdvanceTo(At(5)));
        Assert.Equal(1, _wheel.Count);
        Assert.Equal("a", Assert.Single(AdvanceTo(At(12))));
    }

    [Fact]
    public void Count_tracks_scheduled_entries_until_they_fire()
    {
        AdvanceTo(T0);
        Assert.Equal(0, _wheel.Count);

        _wheel.Schedule("a", At(1));
        _wheel.Schedule("a", At(2));
        _wheel.Schedule("b", At(2));
        _wheel.Schedule("c", At(20));
        Assert.Equal(4, _wheel.Count);

        Assert.Equal("a", Assert.Single(AdvanceTo(At(1))));
        Assert.Equal(3, _wheel.Count);
        Assert.Equal(2, AdvanceTo(At(2)).Count);
        Assert.Equal(1, _wheel.Count);
        AdvanceTo(At(20));
        Assert.Equal(0, _wheel.Count);
    }

    [Fact]
    public void Many_entries_in_one_slot_fire_together()
    {
        AdvanceTo(T0);
        for (var i = 0; i < 1000; i++)
        {
            _wheel.Schedule($"e{i}", At(3) - TimeSpan.FromMilliseconds(i % 1000));
        }

        Assert.Empty(AdvanceTo(At(2)));
        Assert.Equal(1000, AdvanceTo(At(3)).Count);
        Assert.Equal(0, _wheel.Count);
    }

    [Fact]
    public void Fine_ticks_fire_within_one_tick_of_the_due_time()
    {
        var wheel = new TimingWheel<int>(TimeSpan.FromMilliseconds(250), 64);
        var now = T0;
        var due = new List<TimingWheel<int>.Entry>();
        wheel.Advance(now, due);
        var deadlines = Enumerable.Range(0, 200).Select(i => T0 + TimeSpan.FromMilliseconds(37 * i + 1)).ToArray();
        for (var i = 0; i < deadlines.Length; i++)
        {
            wheel.Schedule(i, deadlines[i]);
        }

        var firedAt = new DateTime?[deadlines.Length];
        while (now < T0 + TimeSpan.FromSeconds(60))
        {
            now += TimeSpan.FromMilliseconds(50);
            due.Clear();
            wheel.Advance(now, due);
            foreach (var entry in due)
            {
                Assert.Null(firedAt[entry.Item]);
                firedAt[entry.Item] = now;
            }
        }

        for (var i = 0; i < deadlines.Length; i++)
        {
            Assert.NotNull(firedAt[i]);
            Assert.InRange(firedAt[i]!.Value, deadlines[i], deadlines[i] + TimeSpan.FromMilliseconds(250));
        }
    }

    [Fact]
    public void Wheel_needs_a_positive_tick_and_a_power_of_two_slot_count()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TimingWheel<int>(TimeSpan.Zero, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TimingWheel<int>(Tick, 6));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TimingWheel<int>(Tick, 0));
    }
}
