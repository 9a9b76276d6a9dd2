using System.Text.Json;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Errors;

/// <summary>One problem with one field, as in an error's <c>details</c>.</summary>
public sealed record ErrorDetail(string Field, string Problem);

/// <summary>
/// The one error shape of API.md: <c>{"error":{"code","message","details"?}}</c>, whatever produced it.
/// Messages are for people and never carry stack traces, SQL or secrets.
/// </summary>
public sealed record ApiError(int Status, string Code, string Message, IReadOnlyList<ErrorDetail>? Details = null)
{
    public const string InvalidBody = "INVALID_BODY";
    public const string InvalidQuery = "INVALID_QUERY";
    public const string UnauthorizedCode = "UNAUTHORIZED";
    public const string ForbiddenCode = "FORBIDDEN";
    public const string NotFoundCode = "NOT_FOUND";
    public const string MethodNotAllowed = "METHOD_NOT_ALLOWED";
    public const string ConflictCode = "CONFLICT";
    public const string DeviceNotConnected = "DEVICE_NOT_CONNECTED";
    public const string CursorExpired = "CURSOR_EXPIRED";
    public const string PayloadTooLarge = "PAYLOAD_TOO_LARGE";
    public const string UnsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE";
    public const string RateLimited = "RATE_LIMITED";
    public const string Unavailable = "UNAVAILABLE";
    public const string Internal = "INTERNAL";

    /// <summary>Seconds for <c>Retry-After</c> (429, 503).</summary>
    public long? RetryAfterSeconds { get; init; }

    /// <summary>For 500s: the id under which the failure was logged.</summary>
    public string? CorrelationId { get; init; }

    public static ApiError Body(string field, string problem) =>
        new(422, InvalidBody, $"{field}: {Describe(problem)}", [new ErrorDetail(field, problem)]);

    public static ApiError BodyNotJson(string message) => new(422, InvalidBody, message);

    public static ApiError Query(string field, string problem) =>
        new(400, InvalidQuery, $"{field}: {Describe(problem)}", [new ErrorDetail(field, problem)]);

    public static ApiError NotFound(string what) => new(404, NotFoundCode, what);

    /// <summary>Missing, malformed, unknown, wrong, expired or revoked credentials: never says which.</summary>
    public static ApiError Unauthorized() => new(401, UnauthorizedCode, "missing, invalid or expired credentials");

    public static ApiError Forbidden(string why) => new(403, ForbiddenCode, why);

    public static ApiError Conflict(string why) => new(409, ConflictCode, why);

    public static ApiError UpgradeRequired() =>
        new(400, InvalidQuery, "this endpoint requires a WebSocket upgrade", [new ErrorDetail("upgrade", DeviceRules.Problems.Missing)]);

    public static ApiError TooLarge() => new(413, PayloadTooLarge, "request body is larger than 64 KiB");

    public static ApiError NotJson() => new(415, UnsupportedMediaType, "request body must be application/json");

    public static ApiError Limited(TimeSpan retryAfter) =>
        new(429, RateLimited, "too many requests; retry later") { RetryAfterSeconds = Math.Max(1, (long)Math.Ceiling(retryAfter.TotalSeconds)) };

    public static ApiError Expired() =>
        new(410, CursorExpired, "cursor is older than the retained events or from another epoch; start again without 'since'");

    public static ApiError NotConnected() =>
        new(409, DeviceNotConnected, "the device has no open device channel (/ws/device)");

    public static ApiError ServiceUnavailable(string message, long retryAfterSeconds = 1) =>
        new(503, Unavailable, message) { RetryAfterSeconds = retryAfterSeconds };

    public static ApiError Bug(string correlationId) =>
        new(500, Internal, "internal error; it was logged with this correlation id") { CorrelationId = correlationId };

    public void WriteTo(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        WriteObject(writer, "error");
        writer.WriteEndObject();
    }

    /// <summary>Writes <c>"name": {code, message, details}</c>, for embedding in WebSocket frames.</summary>
    public void WriteObject(Utf8JsonWriter writer, string name)
    {
        writer.WriteStartObject(name);
        writer.WriteString("code", Code);
        writer.WriteString("message", Message);
        if (Details is { Count: > 0 } || CorrelationId is not null)
        {
            writer.WriteStartArray("details");
            foreach (var detail in Details ?? [])
            {
                writer.WriteStartObject();
                writer.WriteString("field", detail.Field);
                writer.WriteString("problem", detail.Problem);
                writer.WriteEndObject();
            }

            if (CorrelationId is not null)
            {
                writer.WriteStartObject();
                writer.WriteString("correlation_id", CorrelationId);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
        }

        writer.WriteEndObject();
    }

    private static string Describe(string problem) => problem switch
    {
        DeviceRules.Problems.Missing => "is required",
        DeviceRules.Problems.WrongType => "has the wrong JSON type",
        DeviceRules.Problems.Empty => "must not be empty",
        DeviceRules.Problems.TooLong => "is too long",
        DeviceRules.Problems.TooMany => "has too many entries",
        DeviceRules.Problems.InvalidCharacters => "contains characters that are not allowed",
        DeviceRules.Problems.NotFinite => "must be a finite number",
        DeviceRules.Problems.Duplicate => "appears more than once",
        DeviceRules.Problems.OutOfRange => "is out of range",
        _ => "is invalid",
    };
}
