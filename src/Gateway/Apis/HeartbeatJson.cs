using System.Buffers;
using System.Text.Json;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Apis;

/// <summary>
/// Reads a heartbeat body (HTTP, or a <c>/ws/device</c> frame) with <see cref="Utf8JsonReader"/> and checks every
/// field against <see cref="DeviceRules"/>: one pass, no reflection, the first problem reported with its field.
/// Unknown top-level fields are skipped.
/// </summary>
public static class HeartbeatJson
{
    private static readonly JsonReaderOptions Options = new() { MaxDepth = 32 };

    // Well-known metric keys are matched without allocating a string per heartbeat.
    private static readonly (byte[] Utf8, string Text)[] WellKnownMetrics =
        [.. new[] { "cpu_pct", "mem_pct", "mem_used_bytes", "disk_pct", "load1", "uptime_s" }.Select(k => (System.Text.Encoding.UTF8.GetBytes(k), k))];

    public static bool TryParse(ReadOnlySequence<byte> json, out HeartbeatInput? input, out ApiError? error)
    {
        input = null;
        try
        {
            var reader = new Utf8JsonReader(json, Options);
            error = Read(ref reader, out input);
            if (error is null && reader.Read())
            {
                error = ApiError.BodyNotJson("body must be one JSON object");
            }
        }
        catch (JsonException)
        {
            error = ApiError.BodyNotJson("body is not valid JSON");
        }
        catch (InvalidOperationException)
        {
            // Invalid UTF-8 or escapes inside a string value surface as InvalidOperationException from GetString.
            error = ApiError.BodyNotJson("body is not valid JSON");
        }

        if (error is not null)
        {
            input = null;
        }

        return error is null;
    }

    private static ApiError? Read(ref Utf8JsonReader reader, out HeartbeatInput? input)
    {
        input = null;
        if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
        {
            return ApiError.BodyNotJson("body must be a JSON object");
        }

        string? deviceId = null, deviceName = null, platform = null, appVersion = null;
        MetricSet? metrics = null;
        IReadOnlyList<ContainerInfo>? containers = null;
        var seen = 0;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            var field = Field(ref reader);
            reader.Read();
            if (field == 0)
            {
                reader.Skip();
                continue;
            }

            if ((seen & field) != 0)
            {
                return ApiError.Body(FieldName(field), DeviceRules.Problems.Duplicate);
            }

            seen |= field;
            if (reader.TokenType == JsonTokenType.Null && field != DeviceIdField)
            {
                continue;
            }

            var problem = field switch
            {
                DeviceIdField => ReadText(ref reader, DeviceRules.CheckDeviceId, out deviceId),
                DeviceNameField => ReadText(ref reader, DeviceRules.CheckDeviceName, out deviceName),
                PlatformField => ReadText(ref reader, DeviceRules.CheckPlatform, out platform),
                AppVersionField => ReadText(ref reader, DeviceRules.CheckAppVersion, out appVersion),
                _ => null,
            };
            if (problem is not null)
            {
                return ApiError.Body(FieldName(field), problem);
            }

            var error = field switch
            {
                MetricsField => ReadMetrics(ref reader, out metrics),
                ContainersField => ReadContainers(ref reader, out containers),
                _ => null,
            };
            if (error is not null)
            {
                return error;
            }
        }

        if (deviceId is null)
        {
            return ApiError.Body("device_id", DeviceRules.Problems.Missing);
        }

        input = new HeartbeatInput(
            deviceId,
            deviceName is null ? null : DeviceRules.NormalizeDeviceName(deviceName),
            platform,
            appVersion,
            metrics,
            containers);
        return null;
    }

    private const int DeviceIdField = 1, DeviceNameField = 2, PlatformField = 4, AppVersionField = 8, MetricsField = 16, ContainersField = 32;

    private static int Field(ref Utf8JsonReader reader) =>
        reader.ValueTextEquals("device_id"u8) ? DeviceIdField
        : reader.ValueTextEquals("device_name"u8) ? DeviceNameField
        : reader.ValueTextEquals("platform"u8) ? PlatformField
        : reader.ValueTextEquals("app_version"u8) ? AppVersionField
        : reader.ValueTextEquals("metrics"u8) ? MetricsField
        : reader.ValueTextEquals("containers"u8) ? ContainersField
        : 0;

    private static string FieldName(int field) => field switch
    {
        DeviceIdField => "device_id",
        DeviceNameField => "device_name",
        PlatformField => "platform",
        AppVersionField => "app_version",
        MetricsField => "metrics",
        _ => "containers",
    };

    private static string? ReadText(ref Utf8JsonReader reader, FieldCheck check, out string? value)
    {
        value = null;
        if (reader.TokenType != JsonTokenType.String)
        {
            return DeviceRules.Problems.WrongType;
        }

        // Bound the work before allocating: no valid field is longer than 128 characters (4 UTF-8 bytes each, escaped up to 6x).
        if (reader.ValueSpan.Length > DeviceRules.MaxDeviceNameLength * 6 * 4)
        {
            return DeviceRules.Problems.TooLong;
        }

        var text = reader.GetString()!;
        var problem = check(text);
        value = problem is null ? text : null;
        return problem;
    }

    private delegate string? FieldCheck(ReadOnlySpan<char> value);

    private static ApiError? ReadMetrics(ref Utf8JsonReader reader, out MetricSet? metrics)
    {
        metrics = null;
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            return ApiError.Body("metrics", DeviceRules.Problems.WrongType);
        }

        var keys = new List<string>(8);
        var values = new List<double>(8);
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (keys.Count == DeviceRules.MaxMetrics)
            {
                return ApiError.Body("metrics", DeviceRules.Problems.TooMany);
            }

            var key = MetricKey(ref reader);
            var problem = DeviceRules.CheckMetricKey(key);
            if (problem is not null)
            {
                return ApiError.Body("metrics", problem);
            }

            if (keys.Contains(key))
            {
                return ApiError.Body($"metrics.{key}", DeviceRules.Problems.Duplicate);
            }

            reader.Read();
            if (reader.TokenType != JsonTokenType.Number)
            {
                return ApiError.Body($"metrics.{key}", DeviceRules.Problems.WrongType);
            }

            if (!reader.TryGetDouble(out var value) || !double.IsFinite(value))
            {
                return ApiError.Body($"metrics.{key}", DeviceRules.Problems.NotFinite);
            }

            keys.Add(key);
            values.Add(value);
        }

        metrics = new MetricSet([.. keys], [.. values]);
        return null;
    }

    private static string MetricKey(ref Utf8JsonReader reader)
    {
        foreach (var (utf8, text) in WellKnownMetrics)
        {
            if (reader.ValueTextEquals(utf8))
            {
                return text;
            }
        }

        return reader.ValueSpan.Length > DeviceRules.MaxMetricKeyLength * 6 ? new string('x', DeviceRules.MaxMetricKeyLength + 1) : reader.GetString()!;
    }

    private static ApiError? ReadContainers(ref Utf8JsonReader reader, out IReadOnlyList<ContainerInfo>? containers)
    {
        containers = null;
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            return ApiError.Body("containers", DeviceRules.Problems.WrongType);
        }

        var list = new List<ContainerInfo>();
        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
        {
            var at = $"containers[{list.Count}]";
            if (list.Count == DeviceRules.MaxContainers)
            {
                return ApiError.Body("containers", DeviceRules.Problems.TooMany);
            }

            if (reader.TokenType != JsonTokenType.StartObject)
            {
                return ApiError.Body(at, DeviceRules.Problems.WrongType);
            }

            string? name = null, image = null, state = null, ports = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var (field, max, min) = reader.ValueTextEquals("name"u8) ? ("name", 128, 1)
                    : reader.ValueTextEquals("image"u8) ? ("image", 256, 0)
                    : reader.ValueTextEquals("state"u8) ? ("state", 32, 0)
                    : reader.ValueTextEquals("ports"u8) ? ("ports", 128, 0)
                    : (null, 0, 0);
                reader.Read();
                if (field is null)
                {
                    reader.Skip();
                    continue;
                }

                if (reader.TokenType != JsonTokenType.String)
                {
                    return ApiError.Body($"{at}.{field}", DeviceRules.Problems.WrongType);
                }

                var text = reader.ValueSpan.Length > max * 24 ? new string('x', max + 1) : reader.GetString()!;
                var problem = DeviceRules.CheckPrintable(text, min, max);
                if (problem is not null)
                {
                    return ApiError.Body($"{at}.{field}", problem);
                }

                switch (field)
                {
                    case "name": name = text; break;
                    case "image": image = text; break;
                    case "state": state = text; break;
                    default: ports = text; break;
                }
            }

            if (name is null)
            {
                return ApiError.Body($"{at}.name", DeviceRules.Problems.Missing);
            }

            list.Add(new ContainerInfo(name, image ?? "", state ?? "", ports ?? ""));
        }

        containers = list;
        return null;
    }
}
