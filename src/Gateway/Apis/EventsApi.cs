using Presence.Gateway.Auth;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Apis;

/// <summary><c>GET /api/v1/events</c>: the tenant's event stream, page by page from a cursor.</summary>
public static class EventsApi
{
    public static IEndpointRouteBuilder MapEventsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/events", ReadAsync).RequireAccess(Access.Viewer);
        return app;
    }

    /// <summary>
    /// Parses <c>since</c> (null when absent: start at the current end). A cursor this log never issued is 400; an
    /// expired one is left to the reader (410 here, <c>reset</c> on the WebSocket).
    /// </summary>
    public static async ValueTask<(ApiError? Error, EventCursor? Since, CursorState State)> SinceAsync(
        HttpRequest request, IEventLog log, CancellationToken cancellationToken)
    {
        var error = QueryArgs.Optional(request, "since", out var text);
        if (error is not null || text is null)
        {
            return (error, null, CursorState.Valid);
        }

        var state = EventCursor.TryParse(text, out var cursor) ? await log.ValidateAsync(cursor, cancellationToken) : CursorState.Unknown;
        return state == CursorState.Unknown
            ? (ApiError.Query("since", DeviceRules.Problems.Invalid), null, state)
            : (null, cursor, state);
    }

    private static async Task<IResult> ReadAsync(HttpContext context, ApiContext api)
    {
        var log = api.Store.Events;
        var limitError = QueryArgs.Limit(context.Request, 500, 1000, out var limit);
        var deviceError = QueryArgs.OptionalDeviceId(context.Request, "device_id", out var deviceId);
        var (sinceError, since, _) = (limitError ?? deviceError) is null
            ? await SinceAsync(context.Request, log, context.RequestAborted)
            : default;
        var error = limitError ?? deviceError ?? sinceError;
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var page = await log.ReadAsync(api.TenantOf(context), since ?? log.Head, limit, deviceId, context.RequestAborted);
        if (page.State == CursorState.Expired)
        {
            return new ApiErrorResult(ApiError.Expired());
        }

        return JsonBody.Json(200, (Page: page, log.Epoch), static (writer, s) =>
        {
            writer.WriteStartObject();
            writer.WriteStartArray("events");
            foreach (var e in s.Page.Events)
            {
                writer.WriteRawValue(e.ToJson(s.Epoch).Span, skipInputValidation: true);
            }

            writer.WriteEndArray();
            writer.WriteString("next_cursor", s.Page.Next.ToString());
            writer.WriteEndObject();
        });
    }
}
