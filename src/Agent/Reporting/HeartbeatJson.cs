using System.Buffers;
using System.Text.Json;
using Presence.Agent.Docker;
using Presence.Agent.Host;

namespace Presence.Agent.Reporting;

/// <summary>
/// Writes the heartbeat body (HTTP) or frame (<c>/ws/device</c>, with <c>"type":"heartbeat"</c>) and the
/// <c>report</c> command's output. Each stays within the gateway's limits: a heartbeat within 64 KiB (the body and
/// WebSocket message limit) and a report within 16 KiB (a command result's output), dropping containers from the end
/// when there are too many to fit.
/// </summary>
internal static class HeartbeatJson
{
    /// <summary>Under the gateway's 64 KiB with room to spare.</summary>
    public const int MaxHeartbeatBytes = 60 * 1024;

    /// <summary>A command result's output is at most 16,384 characters; UTF-8 bytes never undercount characters.</summary>
    public const int MaxReportBytes = 16 * 1024;

    /// <summary>Device fields sent with every heartbeat.</summary>
    public sealed record Identity(string DeviceId, string? DeviceName, string Platform, string AppVersion);

    /// <summary>The heartbeat as UTF-8 JSON; <paramref name="containersSent"/> says how many containers fitted.</summary>
    public static byte[] Heartbeat(Identity identity, HostReport report, bool frame, out int containersSent)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        containersSent = report.Containers?.Count ?? 0;
        while (true)
        {
            buffer.ResetWrittenCount();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                if (frame)
                {
                    writer.WriteString("type", "heartbeat");
                }

                writer.WriteString("device_id", identity.DeviceId);
                if (identity.DeviceName is not null)
                {
                    writer.WriteString("device_name", identity.DeviceName);
                }

                writer.WriteString("platform", identity.Platform);
                writer.WriteString("app_version", identity.AppVersion);
                WriteMetrics(writer, report.Metrics);
                WriteContainers(writer, report.Containers, containersSent);
                writer.WriteEndObject();
            }

            if (buffer.WrittenCount <= MaxHeartbeatBytes || containersSent == 0)
            {
                return buffer.WrittenSpan.ToArray();
            }

            containersSent = Fewer(containersSent, buffer.WrittenCount, MaxHeartbeatBytes);
        }
    }

    /// <summary>
    /// The <c>report</c> command's output: <c>{"metrics":{...},"containers":[...],"containers_total":N}</c>, within 16 KiB
    /// (<c>containers</c> may then hold fewer than <c>containers_total</c>; both are absent without Docker).
    /// </summary>
    public static string Report(HostReport report)
    {
        var buffer = new ArrayBufferWriter<byte>(1024);
        var count = report.Containers?.Count ?? 0;
        while (true)
        {
            buffer.ResetWrittenCount();
            using (var writer = new Utf8JsonWriter(buffer))
            {
                writer.WriteStartObject();
                WriteMetrics(writer, report.Metrics);
                WriteContainers(writer, report.Containers, count);
                if (report.Containers is not null)
                {
                    writer.WriteNumber("containers_total", report.Containers.Count);
                }
                writer.WriteEndObject();
            }

            if (buffer.WrittenCount <= MaxReportBytes || count == 0)
            {
                return System.Text.Encoding.UTF8.GetString(buffer.WrittenSpan);
            }

            count = Fewer(count, buffer.WrittenCount, MaxReportBytes);
        }
    }

    /// <summary>Fewer containers, in proportion to how far over the limit the text was (at least one fewer).</summary>
    private static int Fewer(int count, int written, int limit) =>
        Math.Min(count - 1, (int)((long)count * limit / written));

    private static void WriteMetrics(Utf8JsonWriter writer, HostMetrics metrics)
    {
        writer.WriteStartObject("metrics");
        Write(writer, "cpu_pct", metrics.CpuPct);
        Write(writer, "mem_pct", metrics.MemPct);
        Write(writer, "mem_used_bytes", metrics.MemUsedBytes);
        Write(writer, "uptime_s", metrics.UptimeS);
        Write(writer, "load1", metrics.Load1);
        writer.WriteEndObject();
    }

    private static void Write(Utf8JsonWriter writer, string name, double? value)
    {
        if (value is { } v && double.IsFinite(v))
        {
            writer.WriteNumber(name, v);
        }
    }

    private static void WriteContainers(Utf8JsonWriter writer, IReadOnlyList<ContainerInfo>? containers, int count)
    {
        if (containers is null)
        {
            return;
        }

        writer.WriteStartArray("containers");
        for (var i = 0; i < count; i++)
        {
            var container = containers[i];
            writer.WriteStartObject();
            writer.WriteString("name", container.Name);
            writer.WriteString("image", container.Image);
            writer.WriteString("state", container.State);
            writer.WriteString("ports", container.Ports);
            writer.WriteEndObject();
        }

        writer.WriteEndArray();
    }
}
