using System.Globalization;

namespace Presence.Grains.Abstractions;

/// <summary>
/// A position in an event log of one epoch. Rendered as an opaque string (<c>{epoch:x}-{position}</c>);
/// a cursor of another epoch (a lost in-memory log) is expired, never silently reinterpreted.
/// </summary>
public readonly record struct EventCursor(long Epoch, long Position)
{
    public override string ToString() =>
        string.Create(CultureInfo.InvariantCulture, $"{Epoch:x}-{Position}");

    public static bool TryParse(string? text, out EventCursor cursor)
    {
        cursor = default;
        if (string.IsNullOrEmpty(text) || text.Length > 40)
        {
            return false;
        }

        var dash = text.IndexOf('-', StringComparison.Ordinal);
        if (dash <= 0
            || !long.TryParse(text.AsSpan(0, dash), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var epoch)
            || !long.TryParse(text.AsSpan(dash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var position)
            || epoch <= 0)
        {
            return false;
        }

        cursor = new EventCursor(epoch, position);
        return true;
    }
}
