using System.Buffers.Text;
using System.Text;

namespace Presence.Agent.Simulation.Http;

/// <summary>One parsed HTTP/1.1 response: its status, its length on the wire, and whether the server will close.</summary>
public readonly record struct HttpResponseHead(int Status, int Length, bool Close);

/// <summary>
/// Finds the end of one HTTP/1.1 response in a buffer without allocating: status line, headers, then a body framed
/// by <c>Content-Length</c> or chunked transfer encoding (Kestrel chunks a body that was flushed before it completed).
/// The body itself is skipped: the load generator only counts status codes.
/// </summary>
public static class HttpResponseParser
{
    private static ReadOnlySpan<byte> HeaderEnd => "\r\n\r\n"u8;

    private static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    /// <summary>False when <paramref name="data"/> does not hold a whole response yet.</summary>
    public static bool TryParse(ReadOnlySpan<byte> data, out HttpResponseHead response)
    {
        response = default;
        var headerEnd = data.IndexOf(HeaderEnd);
        if (headerEnd < 0)
        {
            return false;
        }

        // "HTTP/1.1 200 OK"
        if (headerEnd < 12 || !Utf8Parser.TryParse(data.Slice(9, 3), out int status, out _))
        {
            throw new InvalidDataException("malformed HTTP status line");
        }

        long contentLength = -1;
        var chunked = false;
        var close = false;
        var headers = data[..headerEnd];
        var lineStart = headers.IndexOf(Crlf) + 2;
        while (lineStart > 1 && lineStart < headers.Length)
        {
            var rest = headers[lineStart..];
            var lineLength = rest.IndexOf(Crlf);
            var line = lineLength < 0 ? rest : rest[..lineLength];
            var colon = line.IndexOf((byte)':');
            if (colon > 0)
            {
                var name = line[..colon];
                var value = line[(colon + 1)..].Trim((byte)' ');
                if (Ascii.EqualsIgnoreCase(name, "content-length"u8))
                {
                    Utf8Parser.TryParse(value, out contentLength, out _);
                }
                else if (Ascii.EqualsIgnoreCase(name, "transfer-encoding"u8))
                {
                    chunked = value.IndexOf("chunked"u8) >= 0;
                }
                else if (Ascii.EqualsIgnoreCase(name, "connection"u8))
                {
                    close = Ascii.EqualsIgnoreCase(value, "close"u8);
                }
            }

            if (lineLength < 0)
            {
                break;
            }

            lineStart += lineLength + 2;
        }

        var bodyStart = headerEnd + 4;
        if (chunked)
        {
            if (!TryChunkedEnd(data, bodyStart, out var end))
            {
                return false;
            }

            response = new HttpResponseHead(status, end, close);
            return true;
        }

        var length = bodyStart + Math.Max(0, contentLength);
        if (data.Length < length)
        {
            return false;
        }

        response = new HttpResponseHead(status, (int)length, close);
        return true;
    }

    private static bool TryChunkedEnd(ReadOnlySpan<byte> data, int position, out int end)
    {
        end = 0;
        while (true)
        {
            var lineLength = data[position..].IndexOf(Crlf);
            if (lineLength < 0)
            {
                return false;
            }

            var sizeText = data.Slice(position, lineLength);
            var semicolon = sizeText.IndexOf((byte)';');
            if (semicolon >= 0)
            {
                sizeText = sizeText[..semicolon];
            }

            if (!Utf8Parser.TryParse(sizeText, out int size, out _, 'x'))
            {
                throw new InvalidDataException("malformed chunk size");
            }

            position += lineLength + 2;
            if (size == 0)
            {
                // No trailers from Kestrel: the last chunk is followed by an empty line.
                var trailerEnd = data[position..].IndexOf(Crlf);
                if (trailerEnd < 0)
                {
                    return false;
                }

                if (trailerEnd > 0)
                {
                    var allTrailers = data[position..].IndexOf(HeaderEnd);
                    if (allTrailers < 0)
                    {
                        return false;
                    }

                    end = position + allTrailers + 4;
                    return true;
                }

                end = position + 2;
                return true;
            }

            position += size + 2;
            if (position > data.Length)
            {
                return false;
            }
        }
    }
}
