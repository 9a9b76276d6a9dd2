using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using Presence.Gateway.Errors;

namespace Presence.Gateway.Apis;

/// <summary>Reading JSON request bodies (size and media type first) and writing JSON responses.</summary>
public static class JsonBody
{
    public const int MaxBytes = 64 * 1024;

    /// <summary>How much of an oversize body the server still reads and discards after its 413.</summary>
    public const int DrainLimit = 1024 * 1024;

    /// <summary>
    /// Buffers the whole body (at most 64 KiB) and hands it to <paramref name="parse"/>; answers 413/415 without parsing.
    /// </summary>
    public static async ValueTask<(T? Value, ApiError? Error)> ReadAsync<T>(HttpRequest request, Func<ReadOnlySequence<byte>, (T?, ApiError?)> parse)
    {
        if (request.ContentLength > MaxBytes)
        {
            return (default, ApiError.TooLarge());
        }

        if (!request.HasJsonContentType())
        {
            return (default, ApiError.NotJson());
        }

        var body = request.BodyReader;
        while (true)
        {
            var read = await body.ReadAsync(request.HttpContext.RequestAborted);
            if (read.Buffer.Length > MaxBytes)
            {
                body.AdvanceTo(read.Buffer.End);
                return (default, ApiError.TooLarge());
            }

            if (read.IsCompleted)
            {
                try
                {
                    // JSON text is UTF-8 (RFC 8259 8.1), also inside the fields a parser skips without decoding.
                    return IsUtf8(read.Buffer) ? parse(read.Buffer) : (default, ApiError.BodyNotJson("body is not valid UTF-8"));
                }
                finally
                {
                    body.AdvanceTo(read.Buffer.End);
                }
            }

            body.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private static bool IsUtf8(ReadOnlySequence<byte> body)
    {
        if (body.IsSingleSegment)
        {
            return System.Text.Unicode.Utf8.IsValid(body.FirstSpan);
        }

        var copy = ArrayPool<byte>.Shared.Rent((int)body.Length);
        try
        {
            body.CopyTo(copy);
            return System.Text.Unicode.Utf8.IsValid(copy.AsSpan(0, (int)body.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    public static IResult Json<TState>(int status, TState state, Action<Utf8JsonWriter, TState> write) =>
        new JsonResult<TState>(status, state, write);

    private sealed class JsonResult<TState>(int status, TState state, Action<Utf8JsonWriter, TState> write) : IResult, IStatusCodeHttpResult
    {
        public int? StatusCode => status;

        public async Task ExecuteAsync(HttpContext httpContext)
        {
            var response = httpContext.Response;
            response.StatusCode = status;
            response.ContentType = "application/json; charset=utf-8";
            using (var writer = new Utf8JsonWriter((IBufferWriter<byte>)response.BodyWriter))
            {
                write(writer, state);
            }

            await response.BodyWriter.FlushAsync(httpContext.RequestAborted);
        }
    }
}
