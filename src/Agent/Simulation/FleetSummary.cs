using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Presence.Agent.Simulation;

/// <summary>Latency percentiles of answered heartbeats, milliseconds.</summary>
public sealed record FleetLatency(double P50, double P90, double P99, double P999, double Max);

/// <summary>
/// The outcome of a simulator run, printed as its last line (one JSON object) for scripts and the benchmark runner.
/// Times are on the run's clock; <see cref="Seconds"/> starts when the fleet starts (after the first heartbeat).
/// </summary>
public sealed record FleetSummary
{
    public required int Devices { get; init; }
    public required int Connections { get; init; }
    public required double? TargetRate { get; init; }
    public required double IntervalS { get; init; }
    public required double PollIntervalS { get; init; }
    public required double TimeoutS { get; init; }
    public required double ChurnPercent { get; init; }
    public required double Seconds { get; init; }

    /// <summary>Heartbeats sent, answered or not (the first one included).</summary>
    public required long Heartbeats { get; init; }
    public required double HeartbeatsPerS { get; init; }

    /// <summary>Heartbeats per second after the first progress interval (start-up and JIT excluded); null for shorter runs.</summary>
    public required double? SteadyHeartbeatsPerS { get; init; }
    public required long Ok { get; init; }

    /// <summary>Answers other than 200 by status, and <c>conn</c>: heartbeats that got no answer.</summary>
    public required IReadOnlyDictionary<string, long> Errors { get; init; }
    public required FleetLatency LatencyMs { get; init; }

    /// <summary>Heartbeats sent more than a second after their due time (the simulator or the gateway was behind).</summary>
    public required long Late { get; init; }
    public required int OnlineAtEnd { get; init; }
    public required int SilentAtEnd { get; init; }
    public required long WentSilent { get; init; }
    public required long CameBack { get; init; }

    /// <summary>The simulator's CPU over the fleet's run, percent of one core (real time).</summary>
    public required double CpuPercent { get; init; }

    /// <summary>
    /// Bytes the simulator allocated per heartbeat after the first progress interval (progress lines included; the
    /// start-up's connections and JIT excluded); null for shorter runs.
    /// </summary>
    public required double? AllocatedBytesPerHeartbeat { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, FleetJson.Default.FleetSummary);

    public static FleetSummary? FromJson(string json) => JsonSerializer.Deserialize(json, FleetJson.Default.FleetSummary);

    /// <summary>The summary for people: a few lines.</summary>
    public string ToText()
    {
        var errors = string.Join(' ', Errors.Select(e => $"{e.Key}={e.Value}"));
        return string.Create(CultureInfo.InvariantCulture,
            $"""
            summary: {Seconds:F1} s, {Devices:N0} devices over {Connections} connections, each every {IntervalS:0.###} s{(TargetRate is { } rate ? $" (--rate {rate:N0}/s)" : "")}, churn {ChurnPercent:0.##}%
              heartbeats {Heartbeats:N0} ({HeartbeatsPerS:N1}/s{(SteadyHeartbeatsPerS is { } steady ? $", {steady:N1}/s after the first interval" : "")}): ok {Ok:N0}, errors {errors}, late {Late:N0}
              latency p50 {LatencyMs.P50:F2} ms, p90 {LatencyMs.P90:F2} ms, p99 {LatencyMs.P99:F2} ms, p99.9 {LatencyMs.P999:F2} ms, max {LatencyMs.Max:F2} ms
              devices online at end {OnlineAtEnd:N0}/{Devices:N0} (silent {SilentAtEnd:N0}); went silent {WentSilent:N0}, came back {CameBack:N0}
              simulator CPU {CpuPercent:F0}% of a core{(AllocatedBytesPerHeartbeat is { } bytes ? $", {bytes:F1} bytes allocated per heartbeat after the first interval" : "")}
            """);
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(FleetSummary))]
internal sealed partial class FleetJson : JsonSerializerContext;
