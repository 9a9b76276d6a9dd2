namespace Presence.Grains.Abstractions;

/// <summary>
/// The field rules of API.md, in one place for every entry point (HTTP bodies, path segments, WebSocket frames).
/// Each check returns null when the value is valid, or the <c>problem</c> reported in error details.
/// </summary>
public static class DeviceRules
{
    public const int MaxDeviceIdLength = 128;
    public const int MaxDeviceNameLength = 128;
    public const int MaxPlatformLength = 32;
    public const int MaxAppVersionLength = 64;
    public const int MaxMetrics = 32;
    public const int MaxMetricKeyLength = 64;
    public const int MaxContainers = 256;
    public const int MaxCommandNameLength = 64;
    public const int MaxCommandOutputLength = 16 * 1024;
    public const int MaxLabels = 32;
    public const int MaxLabelKeyLength = 64;
    public const int MaxLabelValueLength = 256;
    public const int MaxTimeoutSeconds = 7 * 24 * 3600;

    public static class Problems
    {
        public const string Missing = "missing";
        public const string WrongType = "wrong_type";
        public const string Empty = "empty";
        public const string TooLong = "too_long";
        public const string TooMany = "too_many";
        public const string InvalidCharacters = "invalid_characters";
        public const string NotFinite = "not_finite";
        public const string Duplicate = "duplicate";
        public const string OutOfRange = "out_of_range";
        public const string Invalid = "invalid";
    }

    public static string? CheckDeviceId(ReadOnlySpan<char> value) =>
        CheckCharset(value, MaxDeviceIdLength, static c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or ':' or '@' or '-');

    public static string? CheckPlatform(ReadOnlySpan<char> value) =>
        CheckCharset(value, MaxPlatformLength, static c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-');

    public static string? CheckMetricKey(ReadOnlySpan<char> value) =>
        CheckCharset(value, MaxMetricKeyLength, static c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '.');

    public static string? CheckLabelKey(ReadOnlySpan<char> value) =>
        CheckCharset(value, MaxLabelKeyLength, static c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '.' or '-' or '/');

    public static string? CheckLabelValue(ReadOnlySpan<char> value) => CheckPrintable(value, 0, MaxLabelValueLength);

    public static string? CheckCommandName(ReadOnlySpan<char> value) =>
        CheckCharset(value, MaxCommandNameLength, static c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');

    /// <summary>Device names are checked after trimming; see <see cref="NormalizeDeviceName"/>.</summary>
    public static string? CheckDeviceName(ReadOnlySpan<char> value) => CheckPrintable(value.Trim(), 1, MaxDeviceNameLength);

    public static string NormalizeDeviceName(string value) => value.Trim();

    public static string? CheckAppVersion(ReadOnlySpan<char> value) => CheckPrintable(value, 1, MaxAppVersionLength);

    /// <summary>Printable text of <paramref name="min"/>..<paramref name="max"/> characters: no control characters, no lone surrogates.</summary>
    public static string? CheckPrintable(ReadOnlySpan<char> value, int min, int max)
    {
        if (value.Length < min)
        {
            return Problems.Empty;
        }

        if (value.Length > max)
        {
            return Problems.TooLong;
        }

        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsControl(c))
            {
                return Problems.InvalidCharacters;
            }

            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(c))
            {
                return Problems.InvalidCharacters;
            }
        }

        return null;
    }

    private static string? CheckCharset(ReadOnlySpan<char> value, int max, Func<char, bool> allowed)
    {
        if (value.IsEmpty)
        {
            return Problems.Empty;
        }

        if (value.Length > max)
        {
            return Problems.TooLong;
        }

        foreach (var c in value)
        {
            if (!allowed(c))
            {
                return Problems.InvalidCharacters;
            }
        }

        return null;
    }
}
