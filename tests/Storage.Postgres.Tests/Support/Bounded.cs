namespace Presence.Storage.Postgres.Tests.Support;

/// <summary>
/// Bounds what a test awaits of the store: a store that lost a commit or stalled fails the test instead of hanging
/// the run.
/// </summary>
internal static class Bounded
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static Task Bound(this ValueTask task) => task.AsTask().WaitAsync(Timeout);

    public static Task<T> Bound<T>(this ValueTask<T> task) => task.AsTask().WaitAsync(Timeout);

    public static Task Bound(this Task task) => task.WaitAsync(Timeout);
}
