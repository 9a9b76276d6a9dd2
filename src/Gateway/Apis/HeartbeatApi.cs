using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Apis;

/// <summary><c>POST /api/v1/heartbeat</c> (and its alias <c>POST /api/connect</c>): the device-facing hot path.</summary>
public static class HeartbeatApi
{
    public static IEndpointRouteBuilder MapHeartbeatApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/heartbeat", HandleAsync);
        app.MapPost("/api/connect", HandleAsync);
        return app;
    }

    private static async Task<IResult> HandleAsync(HttpContext context, IDeviceGrains grains, ApiContext api)
    {
        var (input, error) = await JsonBody.ReadAsync<HeartbeatInput>(context.Request, static json =>
            HeartbeatJson.TryParse(json, out var input, out var error) ? (input, null) : (null, error));
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var key = new DeviceKey(api.TenantOf(context), input!.DeviceId);
        var result = await grains.HeartbeatAsync(key, input, context.RequestAborted);
        if (result.Outcome == HeartbeatOutcome.RateLimited)
        {
            return new ApiErrorResult(ApiError.Limited(result.RetryAfter));
        }

        return JsonBody.Json(200, (Device: result.Device!, Api: api), static (writer, s) => WriteAccepted(writer, s.Device, s.Api));
    }

    /// <summary>The acknowledgement of a heartbeat, shared by HTTP and the device channel's <c>ack</c>.</summary>
    public static void WriteAccepted(System.Text.Json.Utf8JsonWriter writer, DeviceRecord device, ApiContext api)
    {
        writer.WriteStartObject();
        writer.WriteString("status", "ok");
        writer.WriteString("device_status", device.Status.Name());
        writer.WriteNumber("poll_interval_s", PresenceJson.WholeSeconds(api.PollInterval));
        writer.WriteNumber("timeout_s", PresenceJson.WholeSeconds(device.Timeout > TimeSpan.Zero ? device.Timeout : api.DefaultTimeout));
        PresenceJson.WriteTime(writer, "server_time", api.Now);
        PresenceJson.WriteSessionId(writer, "session_id", device.SessionId);
        writer.WriteEndObject();
    }
}
