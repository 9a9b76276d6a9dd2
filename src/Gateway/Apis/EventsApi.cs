using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Apis;

/// <summary><c>GET /api/v1/events</c>: the tenant's event stream, page by page from a cursor.</summary>
public static class EventsApi
{
    public static IEndpointRouteBuilder MapEventsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/events", ReadAsync);
        return app;
    }

    /// <summary>Parses <c>since</c>: absent means the current end; a cursor this log never issued is 400, an old one 410.</summary>
    public static ApiError? Since(HttpRequest request, IEventLog log, out EventCursor cursor, out bool given)
    {
        cursor = log.Head;
        var error = QueryArgs.Optional(request, "since", out var since);
        given = since is not null;
        if (error is not null || since is null)
        {
            return error;
        }

        if (!EventCursor.TryParse(since, out cursor))
        {
            return ApiError.Query("since", DeviceRules.Problems.Invalid);
        }

        return log.Validate(cursor) switch
        {
            CursorState.Expired => ApiError.Expired(),
            CursorState.Unknown => ApiError.Query("since", DeviceRules.Problems.Invalid),
            _ => null,
        };
    }

    private static IResult ReadAsync(HttpContext context, ApiContext api)
    {
        var log = api.Store.Events;
        var limitError = QueryArgs.Limit(context.Request, 500, 1000, out var limit);
        var deviceError = QueryArgs.OptionalDeviceId(context.Request, "device_id", out var deviceId);
        var sinceError = Since(context.Request, log, out var since, out _);
        var error = limitError ?? deviceError ?? sinceError;
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var page = log.Read(api.TenantOf(context), since, limit, deviceId);
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
