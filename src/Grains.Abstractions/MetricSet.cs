namespace Presence.Grains.Abstractions;

/// <summary>
/// A device's metrics as two parallel arrays. Devices send the same keys heartbeat after heartbeat, so a grain
/// reuses the previous key array (<see cref="WithKeysOf"/>) and a heartbeat costs one small array of values.
/// </summary>
public sealed class MetricSet
{
    public static readonly MetricSet Empty = new([], []);

    public MetricSet(string[] keys, double[] values)
    {
        if (keys.Length != values.Length)
        {
            throw new ArgumentException("keys and values differ in length", nameof(values));
        }

        Keys = keys;
        Values = values;
    }

    public string[] Keys { get; }

    public double[] Values { get; }

    public int Count => Keys.Length;

    /// <summary>This set, sharing <paramref name="previous"/>'s key array when the keys are the same.</summary>
    public MetricSet WithKeysOf(MetricSet? previous)
    {
        if (previous is null || ReferenceEquals(previous.Keys, Keys) || !Keys.AsSpan().SequenceEqual(previous.Keys))
        {
            return this;
        }

        return new MetricSet(previous.Keys, Values);
    }
}
