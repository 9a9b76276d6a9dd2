using System.Diagnostics;

namespace Presence.Bench.Transport;

internal readonly record struct Measurement(double CallsPerSecond, double CpuMicrosecondsPerCall, double BytesPerCall);

internal static class Measure
{
    /// <summary>Runs <paramref name="call"/> from <paramref name="callers"/> loops: a warm-up, then a measured window.</summary>
    public static async Task<Measurement> RunAsync(int callers, TimeSpan warmup, TimeSpan duration, Func<Task<bool>> call)
    {
        await LoopAsync(callers, warmup, call);
        var process = Process.GetCurrentProcess();
        process.Refresh();
        var cpuBefore = process.TotalProcessorTime;
        var bytesBefore = GC.GetTotalAllocatedBytes();
        var clock = Stopwatch.StartNew();
        var calls = await LoopAsync(callers, duration, call);
        var elapsed = clock.Elapsed;
        process.Refresh();
        var cpu = process.TotalProcessorTime - cpuBefore;
        var bytes = GC.GetTotalAllocatedBytes() - bytesBefore;
        return new Measurement(calls / elapsed.TotalSeconds, cpu.TotalMicroseconds / calls, (double)bytes / calls);
    }

    private static async Task<long> LoopAsync(int callers, TimeSpan duration, Func<Task<bool>> call)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var counts = await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            long done = 0;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                if (!await call())
                {
                    throw new InvalidOperationException("a call failed");
                }

                done++;
            }

            return done;
        })));
        return counts.Sum();
    }
}
