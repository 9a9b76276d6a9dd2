using System.Collections.Concurrent;

namespace Presence.Grains.Abstractions;

/// <summary>
/// Bounded interning of the small values devices repeat (platforms, app versions, metric key sets): a million
/// devices reporting <c>linux</c> then hold one string, not a million. Past the bound values are kept as they come,
/// so hostile variety costs no more than no interning at all.
/// </summary>
public static class SharedValues
{
    private const int MaxEntries = 4096;
    private static readonly ConcurrentDictionary<string, string> Texts = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, string[]> KeySets = new(StringComparer.Ordinal);

    public static string? Text(string? value)
    {
        if (value is null)
        {
            return null;
        }

        if (Texts.TryGetValue(value, out var shared))
        {
            return shared;
        }

        return Texts.Count < MaxEntries ? Texts.GetOrAdd(value, value) : value;
    }

    /// <summary>The same value as <paramref name="previous"/> keeps the previous instance; a new one is interned.</summary>
    public static string? Text(string? value, string? previous) =>
        value is null || value == previous ? previous : Text(value);

    public static string[] KeySet(string[] keys)
    {
        if (keys.Length == 0)
        {
            return [];
        }

        var id = string.Join('\u0001', keys);
        if (KeySets.TryGetValue(id, out var shared))
        {
            return shared;
        }

        return KeySets.Count < MaxEntries ? KeySets.GetOrAdd(id, keys) : keys;
    }
}
