using Presence.Grains.Abstractions;

namespace Presence.Grains.Tests;

public sealed class EventCursorTests
{
    [Theory]
    [InlineData(1L, 0L)]
    [InlineData(0xabcL, 5L)]
    [InlineData(0x1234_5678_9abcL, 17L)]
    [InlineData(long.MaxValue, long.MaxValue)]
    [InlineData(1L, 1_000_000_000_000L)]
    public void Cursor_survives_format_and_parse(long epoch, long position)
    {
        var cursor = new EventCursor(epoch, position);

        Assert.True(EventCursor.TryParse(cursor.ToString(), out var parsed));
        Assert.Equal(cursor, parsed);
    }

    [Fact]
    public void Cursor_is_formatted_as_hex_epoch_dash_decimal_position()
    {
        Assert.Equal("abc-17", new EventCursor(0xabc, 17).ToString());
        Assert.Equal("1-0", new EventCursor(1, 0).ToString());
    }

    [Fact]
    public void Upper_case_hex_epoch_is_the_same_cursor()
    {
        Assert.True(EventCursor.TryParse("ABC-17", out var cursor));
        Assert.Equal(new EventCursor(0xabc, 17), cursor);
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("-5")]
    [InlineData("abc-")]
    [InlineData("abc--5")]
    [InlineData("abc-+5")]
    [InlineData("abc- 5")]
    [InlineData(" abc-5")]
    [InlineData("abc-5 ")]
    [InlineData("abc-5-6")]
    [InlineData("abc-5x")]
    [InlineData("abc-0x5")]
    [InlineData("abc-1e3")]
    [InlineData("abc-1.0")]
    [InlineData("xyz-5")]
    [InlineData("0x1-5")]
    [InlineData("0-5")]
    [InlineData("ffffffffffffffff-5")]
    [InlineData("1ffffffffffffffff-5")]
    [InlineData("abc-99999999999999999999")]
    [InlineData("abc-٣")]
    [InlineData("1-000000000000000000000000000000000000001")]
    [InlineData("null")]
    public void Junk_is_not_a_cursor(string text)
    {
        Assert.False(EventCursor.TryParse(text, out var cursor));
        Assert.Equal(default, cursor);
    }

    [Fact]
    public void Null_is_not_a_cursor()
    {
        Assert.False(EventCursor.TryParse(null, out _));
    }
}
