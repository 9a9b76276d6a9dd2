namespace Presence.Grains.Abstractions;

/// <summary>
/// A device's metrics as two parallel arrays, held inline in the record (a struct: no object of its own). Devices
/// send the same keys heartbeat after heartbeat, so a grain reuses the previous key array (<see cref="WithKeysOf"/>)
/// and key arrays are shared between devices (<see cref="SharedValues.KeySet"/>): a heartbeat costs one small
/// array of values.
/// </summary>
public readonly struct MetricSet
{
    private readonly string[]? _keys;
    private readonly double[]? _values;

    public static readonly MetricSet Empty = new([], []);

    public MetricSet(string[] keys, double[] values)
    {
        if (keys.Length != values.Length)
        {
            throw new ArgumentException("keys and values differ in length", nameof(values));
        }

        _keys = keys;
        _values = values;
    }

    public string[] Keys => _keys ?? [];

    public double[] Values => _values ?? [];

    public int Count => Keys.Length;

    /// <summary>This set with a shared key array: <paramref name="previous"/>'s when the keys are the same, else an interned one.</summary>
    public MetricSet WithKeysOf(MetricSet? previous)
    {
        var keys = previous is { } last && Keys.AsSpan().SequenceEqual(last.Keys) ? last.Keys : SharedValues.KeySet(Keys);
        return ReferenceEquals(keys, Keys) ? this : new MetricSet(keys, Values);
    }
}
