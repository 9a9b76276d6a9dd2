using System.Text.Json;

namespace Presence.Gateway.Errors;

/// <summary>Writes an <see cref="ApiError"/> as the response, with <c>Retry-After</c> when it has one.</summary>
public sealed class ApiErrorResult(ApiError error) : IResult, IStatusCodeHttpResult
{
    public ApiError Error { get; } = error;

    public int? StatusCode => Error.Status;

    public Task ExecuteAsync(HttpContext httpContext) => WriteAsync(httpContext.Response, Error);

    public static async Task WriteAsync(HttpResponse response, ApiError error)
    {
        response.StatusCode = error.Status;
        response.ContentType = "application/json; charset=utf-8";
        if (error.RetryAfterSeconds is { } seconds)
        {
            response.Headers.RetryAfter = seconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        if (error.Status == StatusCodes.Status401Unauthorized)
        {
            response.Headers.WWWAuthenticate = "Bearer";
        }

        using (var writer = new Utf8JsonWriter(response.BodyWriter))
        {
            error.WriteTo(writer);
        }

        await response.BodyWriter.FlushAsync(response.HttpContext.RequestAborted);
    }
}
