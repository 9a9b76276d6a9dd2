using System.Globalization;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Apis;

/// <summary>Query-string and path arguments, checked once with the API's rules; a bad one is 400 <c>INVALID_QUERY</c>.</summary>
public static class QueryArgs
{
    public static ApiError? Limit(HttpRequest request, int fallback, int max, out int limit)
    {
        limit = fallback;
        var error = Optional(request, "limit", out var text);
        if (error is not null || text is null)
        {
            return error;
        }

        if (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out limit))
        {
            return ApiError.Query("limit", DeviceRules.Problems.Invalid);
        }

        return limit < 1 || limit > max ? ApiError.Query("limit", DeviceRules.Problems.OutOfRange) : null;
    }

    /// <summary>An optional single-valued argument; empty counts as absent.</summary>
    public static ApiError? Optional(HttpRequest request, string name, out string? value)
    {
        value = null;
        var text = request.Query[name];
        if (text.Count > 1)
        {
            return ApiError.Query(name, DeviceRules.Problems.Duplicate);
        }

        value = text.Count == 1 && text[0]!.Length > 0 ? text[0] : null;
        return null;
    }

    /// <summary>An optional device id argument (or a prefix of one).</summary>
    public static ApiError? OptionalDeviceId(HttpRequest request, string name, out string? deviceId)
    {
        var error = Optional(request, name, out deviceId);
        if (error is null && deviceId is not null && DeviceRules.CheckDeviceId(deviceId) is { } problem)
        {
            error = ApiError.Query(name, problem);
        }

        return error;
    }

    /// <summary>The <c>{device_id}</c> path segment.</summary>
    public static ApiError? PathDeviceId(string deviceId) =>
        DeviceRules.CheckDeviceId(deviceId) is { } problem ? ApiError.Query("device_id", problem) : null;
}
