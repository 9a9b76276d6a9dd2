using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Presence.Agent.Simulation;
using Presence.LoadGen;

namespace Presence.Runner.Scenarios;

/// <summary>Small conversions shared by the scenarios.</summary>
internal static class Figures
{
    public static double Seconds(long fromTimestamp, long toTimestamp) =>
        Math.Round((toTimestamp - fromTimestamp) / (double)Stopwatch.Frequency, 3);

    public static double Ms(long ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 3);

    public static JsonObject Latency(LatencyHistogram histogram) => new()
    {
        ["count"] = histogram.Count,
        ["p50_ms"] = Math.Round(histogram.PercentileMs(50), 3),
        ["p90_ms"] = Math.Round(histogram.PercentileMs(90), 3),
        ["p99_ms"] = Math.Round(histogram.PercentileMs(99), 3),
        ["max_ms"] = Math.Round(histogram.MaxNanos / 1e6, 3),
    };

    /// <summary>Latency and status codes of the samples started in [from, to).</summary>
    public static JsonObject Requests(IEnumerable<RequestSample> samples, long from, long to)
    {
        var histogram = new LatencyHistogram();
        long ok = 0, other = 0;
        foreach (var sample in samples)
        {
            if (sample.StartTimestamp >= from && sample.StartTimestamp < to)
            {
                histogram.RecordTicks(sample.EndTimestamp - sample.StartTimestamp);
                if (sample.Status == 200)
                {
                    ok++;
                }
                else
                {
                    other++;
                }
            }
        }

        var result = Latency(histogram);
        result["status_200"] = ok;
        result["status_other"] = other;
        return result;
    }

    public static JsonObject Load(LoadReport report) => new()
    {
        ["client"] = report.Client,
        ["auth"] = report.Auth,
        ["connections"] = report.Connections,
        ["seconds"] = report.Seconds,
        ["requests"] = report.Requests,
        ["rps"] = report.Rps,
        ["p50_ms"] = report.LatencyMs.P50,
        ["p99_ms"] = report.LatencyMs.P99,
        ["max_ms"] = report.LatencyMs.Max,
        ["status"] = new JsonObject(report.Status.Select(s => KeyValuePair.Create(s.Key, (JsonNode?)JsonValue.Create(s.Value)))),
        ["errors"] = report.Errors,
        ["client_cpu_percent"] = report.ClientCpuPercent,
        ["client_cpu_us_per_request"] = report.ClientCpuMicrosPerRequest,
        ["server_cpu_percent"] = report.ServerCpuPercent,
        ["server_cpu_us_per_request"] = report.ServerCpuMicrosPerRequest,
    };

    public static double Round(double value, int digits = 3) => Math.Round(value, digits);

    /// <summary>The median, rounded (0 for no values).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        var median = sorted.Length == 0 ? 0 : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
        return Round(median);
    }

    /// <summary>A number as a command-line argument.</summary>
    public static string Text(double value) => value.ToString(CultureInfo.InvariantCulture);
}
