using Presence.Gateway.Auth;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Apis;

/// <summary><c>POST /api/v1/heartbeat</c> (and its alias <c>POST /api/connect</c>): the device-facing hot path.</summary>
public static class HeartbeatApi
{
    public static IEndpointRouteBuilder MapHeartbeatApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/heartbeat", HandleAsync).RequireAccess(Access.Device);
        app.MapPost("/api/connect", HandleAsync).RequireAccess(Access.Device);
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

        var (key, bound, refused) = Bind(context.Caller(), input!);
        if (refused is not null)
        {
            return new ApiErrorResult(refused);
        }

        var result = await grains.HeartbeatAsync(key, bound, context.RequestAborted);
        if (Refusal(result) is { } refusal)
        {
            return new ApiErrorResult(refusal);
        }

        return JsonBody.Json(200, (Device: result.Device!, Api: api), static (writer, s) => WriteAccepted(writer, s.Device, s.Api));
    }

    /// <summary>
    /// The device a heartbeat from <paramref name="caller"/> is for. With a device token it must be the token's
    /// device (403 otherwise), and the grain must still know the token's credential stamp.
    /// </summary>
    public static (DeviceKey Key, HeartbeatInput Input, ApiError? Error) Bind(Caller caller, HeartbeatInput input)
    {
        var key = new DeviceKey(caller.TenantId, input.DeviceId);
        if (caller.Device is not { } token)
        {
            return (key, input, null);
        }

        return token.Device == key
            ? (key, input with { CredentialStamp = token.CredentialStamp }, null)
            : (key, input, ApiError.Forbidden("the token was issued to another device"));
    }

    /// <summary>The error for a heartbeat the grain did not accept, or null when it did.</summary>
    public static ApiError? Refusal(HeartbeatResult result) => result.Outcome switch
    {
        HeartbeatOutcome.Accepted => null,
        HeartbeatOutcome.RateLimited => ApiError.Limited(result.RetryAfter),
        _ => ApiError.Unauthorized(),
    };

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
