using Microsoft.Extensions.Options;

namespace Presence.Gateway.Auth;

/// <summary>
/// Brute-force protection: counts failed credential attempts per key (a source address, a device) in fixed
/// one-minute windows; a key with <c>Presence:Auth:FailuresPerMinute</c> failures is refused (429) until its window
/// ends, whatever it presents. Memory is bounded: past <see cref="MaxKeys"/> keys, expired windows are dropped, and
/// if that is not enough the oldest half is forgotten (an attacker rotating addresses gains little from that).
/// </summary>
public sealed class FailureLimiter(IOptions<AuthOptions> options, TimeProvider time)
{
    public const int MaxKeys = 100_000;
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private readonly int _limit = options.Value.FailuresPerMinute;
    private readonly Dictionary<string, (DateTime Start, int Failures)> _windows = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    /// <summary>True when <paramref name="key"/> has used up its failures; <paramref name="retryAfter"/> says for how long.</summary>
    public bool IsBlocked(string key, out TimeSpan retryAfter)
    {
        var now = time.GetUtcNow().UtcDateTime;
        lock (_lock)
        {
            if (_windows.TryGetValue(key, out var window) && now - window.Start < Window && window.Failures >= _limit)
            {
                retryAfter = window.Start + Window - now;
                return true;
            }
        }

        retryAfter = TimeSpan.Zero;
        return false;
    }

    public void Failed(string key)
    {
        var now = time.GetUtcNow().UtcDateTime;
        lock (_lock)
        {
            if (_windows.TryGetValue(key, out var window) && now - window.Start < Window)
            {
                _windows[key] = (window.Start, window.Failures + 1);
                return;
            }

            if (_windows.Count >= MaxKeys)
            {
                Prune(now);
            }

            _windows[key] = (now, 1);
        }
    }

    private void Prune(DateTime now)
    {
        foreach (var (key, window) in _windows)
        {
            if (now - window.Start >= Window)
            {
                _windows.Remove(key);
            }
        }

        if (_windows.Count >= MaxKeys)
        {
            foreach (var key in _windows.OrderBy(w => w.Value.Start).Take(MaxKeys / 2).Select(w => w.Key).ToList())
            {
                _windows.Remove(key);
            }
        }
    }
}
