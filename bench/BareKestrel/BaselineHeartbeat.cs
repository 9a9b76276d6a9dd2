using System.Text.Json;
using System.Text.Json.Serialization;

namespace Presence.BareKestrel;

/// <summary>
/// What any JSON endpoint does at minimum: deserialize the body into a dictionary with System.Text.Json and answer
/// a small JSON object shaped like the gateway's acknowledgement. No validation, no state: the floor the gateway's
/// heartbeat throughput is compared against.
/// </summary>
public static class BaselineHeartbeat
{
    public static async Task HandleAsync(HttpContext context)
    {
        Dictionary<string, JsonElement>? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync(context.Request.Body, BaselineJson.Default.DictionaryStringJsonElement, context.RequestAborted);
        }
        catch (JsonException)
        {
            body = null;
        }

        var response = context.Response;
        response.ContentType = "application/json; charset=utf-8";
        if (body is null || !body.TryGetValue("device_id", out var id) || id.ValueKind != JsonValueKind.String)
        {
            response.StatusCode = StatusCodes.Status422UnprocessableEntity;
            await response.WriteAsync("""{"error":{"code":"INVALID_BODY","message":"device_id: missing"}}""", context.RequestAborted);
            return;
        }

        using (var writer = new Utf8JsonWriter(response.BodyWriter))
        {
            writer.WriteStartObject();
            writer.WriteString("status", "ok");
            writer.WriteString("device_status", "online");
            writer.WriteNumber("poll_interval_s", 30);
            writer.WriteNumber("timeout_s", 90);
            writer.WriteString("server_time", DateTime.UtcNow);
            writer.WriteString("session_id", "1");
            writer.WriteEndObject();
        }

        await response.BodyWriter.FlushAsync(context.RequestAborted);
    }
}

[JsonSerializable(typeof(Dictionary<string, JsonElement>))]
internal sealed partial class BaselineJson : JsonSerializerContext;
