using System.Diagnostics;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Errors;

/// <summary>
/// Gives every error the one shape, whatever produced it: unhandled exceptions (500 with a correlation id),
/// Kestrel's bad requests (oversize bodies are 413), and routing's empty 404/405 responses.
/// </summary>
internal sealed partial class ApiErrorMiddleware(RequestDelegate next, ILogger<ApiErrorMiddleware> log)
{
    public async Task InvokeAsync(HttpContext context)
    {
        try
        {
            await next(context);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            await ApiErrorResult.WriteAsync(context.Response, e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? ApiError.TooLarge()
                : new ApiError(e.StatusCode, ApiError.InvalidQuery, "malformed request"));
            return;
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            return; // the client went away; nobody is left to answer
        }
        catch (UnavailableException e) when (!context.Response.HasStarted)
        {
            // Storage down or a partition taken over: expected during outages, retried by the client.
            context.Response.Clear();
            await ApiErrorResult.WriteAsync(context.Response, ApiError.ServiceUnavailable(e.Message, (long)Math.Ceiling(e.RetryAfter.TotalSeconds)));
            return;
        }
        catch (Exception e)
        {
            var correlationId = Activity.Current?.TraceId.ToString() ?? context.TraceIdentifier;
            Unhandled(log, e, correlationId, context.Request.Method, context.GetEndpoint()?.DisplayName ?? "(no endpoint)");
            if (!context.Response.HasStarted)
            {
                context.Response.Clear();
                await ApiErrorResult.WriteAsync(context.Response, ApiError.Bug(correlationId));
            }

            return;
        }

        var response = context.Response;
        if (!response.HasStarted && response.StatusCode >= 400 && response.ContentLength is null && response.ContentType is null)
        {
            await ApiErrorResult.WriteAsync(response, ForStatus(response.StatusCode));
        }
    }

    private static ApiError ForStatus(int status) => status switch
    {
        StatusCodes.Status404NotFound => ApiError.NotFound("no such route"),
        StatusCodes.Status405MethodNotAllowed => new ApiError(status, ApiError.MethodNotAllowed, "method not allowed on this route; see the Allow header"),
        StatusCodes.Status413PayloadTooLarge => ApiError.TooLarge(),
        StatusCodes.Status415UnsupportedMediaType => ApiError.NotJson(),
        >= 500 => new ApiError(status, ApiError.Unavailable, "service unavailable") { RetryAfterSeconds = 1 },
        _ => new ApiError(status, ApiError.InvalidQuery, "bad request"),
    };

    [LoggerMessage(EventId = 2001, Level = LogLevel.Error, Message = "Unhandled error {CorrelationId} in {Method} {Endpoint}")]
    private static partial void Unhandled(ILogger logger, Exception error, string correlationId, string method, string endpoint);
}
