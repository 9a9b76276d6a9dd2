using Presence.Agent.Simulation.Http;

namespace Presence.Agent.Simulation;

/// <summary>Cheap random draws from one connection's own xorshift state (no locks, no allocation).</summary>
internal static class Xorshift
{
    /// <summary>A non-zero state for stream <paramref name="stream"/> of a run seeded with <paramref name="seed"/>.</summary>
    public static ulong Seed(ulong seed, int stream)
    {
        var state = seed ^ ((ulong)(stream + 1) * 0x9E3779B97F4A7C15UL);
        return state == 0 ? 0x9E3779B97F4A7C15UL : state;
    }

    /// <summary>A uniform draw in [0, 1).</summary>
    public static double Unit(ref ulong state) => (HeartbeatRequests.Next(ref state) >> 11) * (1.0 / (1UL << 53));
}
