using System.Buffers;
using System.Text.Json;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;

namespace Presence.Gateway.Apis;

/// <summary>Small request bodies that are one JSON object (commands, provisioning, tokens, API keys): parse, then read fields.</summary>
public static class JsonObject
{
    // A field given twice is refused (422 duplicate-free bodies, as heartbeats are), not "last one wins".
    private static readonly JsonDocumentOptions Options = new() { MaxDepth = 32, AllowDuplicateProperties = false };

    /// <summary>Parses <paramref name="json"/> as exactly one JSON object and hands its root to <paramref name="read"/>.</summary>
    public static (T?, ApiError?) Parse<T>(ReadOnlySequence<byte> json, Func<JsonElement, (T?, ApiError?)> read)
    {
        try
        {
            using var document = JsonDocument.Parse(json, Options);
            return document.RootElement.ValueKind == JsonValueKind.Object
                ? read(document.RootElement)
                : (default, ApiError.BodyNotJson("body must be a JSON object"));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string with invalid UTF-8 or escapes, found when read.
            return (default, ApiError.BodyNotJson("body is not valid JSON"));
        }
    }

    /// <summary>A required string field of 1-<paramref name="maxLength"/> characters; "" with <paramref name="error"/> set otherwise.</summary>
    public static string RequiredString(JsonElement root, string field, int maxLength, out ApiError? error)
    {
        error = !root.TryGetProperty(field, out var value) || value.ValueKind == JsonValueKind.Null ? ApiError.Body(field, DeviceRules.Problems.Missing)
            : value.ValueKind != JsonValueKind.String ? ApiError.Body(field, DeviceRules.Problems.WrongType)
            : value.GetString()!.Length == 0 ? ApiError.Body(field, DeviceRules.Problems.Empty)
            : value.GetString()!.Length > maxLength ? ApiError.Body(field, DeviceRules.Problems.TooLong)
            : null;
        return error is null ? value.GetString()! : "";
    }
}
