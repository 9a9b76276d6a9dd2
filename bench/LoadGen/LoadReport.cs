using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Presence.LoadGen;

/// <summary>Latency percentiles of the measured requests, in milliseconds.</summary>
public sealed record LatencySummary(double P50, double P90, double P99, double P999, double Max);

/// <summary>The outcome of one load run: what was asked, what came back, and what it cost the client.</summary>
public sealed record LoadReport
{
    public required string Client { get; init; }
    public required string Url { get; init; }
    public required int Connections { get; init; }
    public required int Pipeline { get; init; }
    public required string Ids { get; init; }
    public required long Devices { get; init; }

    /// <summary>What the requests carried: <c>none</c>, or <c>bearer</c> (each device's token, <c>--tokens</c>).</summary>
    public string Auth { get; init; } = "none";
    public required double TargetRate { get; init; }

    /// <summary>Length of the measured window (after warm-up), seconds.</summary>
    public required double Seconds { get; init; }

    /// <summary>Responses to requests sent in the measured window.</summary>
    public required long Requests { get; init; }
    public required double Rps { get; init; }

    /// <summary>Responses received over the whole run, warm-up included.</summary>
    public long TotalRequests { get; init; }

    public required LatencySummary LatencyMs { get; init; }
    public required IReadOnlyDictionary<string, long> Status { get; init; }

    /// <summary>Requests with no response (connection refused, reset or closed mid-request), whole run.</summary>
    public required long Errors { get; init; }
    public required double ClientCpuSeconds { get; init; }

    /// <summary>Client CPU as a percentage of one core, after the warm-up if there is one (else the whole run).</summary>
    public required double ClientCpuPercent { get; init; }

    /// <summary>Client CPU per completed request (after the warm-up if any), microseconds: the figure used to choose a client.</summary>
    public required double ClientCpuMicrosPerRequest { get; init; }

    /// <summary>The server's CPU over the same window as a percentage of one core (when its pid was given).</summary>
    public double? ServerCpuPercent { get; init; }

    /// <summary>The server's CPU per request over the same window, microseconds: its cost per heartbeat, less sensitive to a busy machine than req/s.</summary>
    public double? ServerCpuMicrosPerRequest { get; init; }

    /// <summary>CPU of the database server's process tree (<see cref="LoadOptions.DbPid"/>) over the same window, % of one core.</summary>
    public double? DbCpuPercent { get; init; }

    /// <summary>The database server's CPU per request over the same window, microseconds.</summary>
    public double? DbCpuMicrosPerRequest { get; init; }

    [JsonIgnore]
    public long Ok => Status.TryGetValue("200", out var ok) ? ok : 0;

    public string ToJson() => JsonSerializer.Serialize(this, LoadJson.Default.LoadReport);

    public static LoadReport? FromJson(string json) => JsonSerializer.Deserialize(json, LoadJson.Default.LoadReport);

    public string ToHumanLine()
    {
        var statuses = string.Join(' ', Status.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key}={s.Value}"));
        return string.Create(CultureInfo.InvariantCulture,
            $"{Client} x{Connections}{(Pipeline > 1 ? $" pipeline {Pipeline}" : "")}{(Auth == "none" ? "" : $" auth {Auth}")}: {Rps:N0} req/s over {Seconds:F1} s | "
            + $"p50 {LatencyMs.P50:F2} ms  p99 {LatencyMs.P99:F2} ms  max {LatencyMs.Max:F1} ms | {statuses} errors={Errors} | "
            + $"client CPU {ClientCpuPercent:F0}% of a core ({ClientCpuMicrosPerRequest:F1} us/req)")
            + (ServerCpuMicrosPerRequest is { } server
                ? string.Create(CultureInfo.InvariantCulture, $" | server CPU {ServerCpuPercent:F0}% ({server:F1} us/req)")
                : "")
            + (DbCpuMicrosPerRequest is { } db
                ? string.Create(CultureInfo.InvariantCulture, $" | db CPU {DbCpuPercent:F0}% ({db:F1} us/req)")
                : "");
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(LoadReport))]
internal sealed partial class LoadJson : JsonSerializerContext;
