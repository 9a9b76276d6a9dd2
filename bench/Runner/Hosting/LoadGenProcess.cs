using System.Diagnostics;
using Presence.LoadGen;

namespace Presence.Runner.Hosting;

/// <summary>Runs bench/LoadGen as its own process (its CPU is then its own, as on a real client) and reads its JSON line.</summary>
internal static class LoadGenProcess
{
    public static async Task<LoadReport> RunAsync(BenchPaths paths, IReadOnlyList<string> arguments, TimeSpan bound, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.ArgumentList.Add(paths.LoadGen);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        Console.WriteLine($"    loadgen {string.Join(' ', arguments)}");
        var process = ChildProcesses.Start(start);
        try
        {
            var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
            var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(bound);
            await process.WaitForExitAsync(timeout.Token);
            var output = await stdout;
            var json = output.Split('\n').LastOrDefault(l => l.StartsWith('{'));
            var report = json is null ? null : LoadReport.FromJson(json);
            if (report is null)
            {
                throw new InvalidOperationException($"loadgen printed no report (exit {process.ExitCode}): {output}{await stderr}");
            }

            Console.WriteLine($"    {report.ToHumanLine()}");
            return report;
        }
        finally
        {
            await ChildProcesses.StopAsync(process, TimeSpan.FromSeconds(5));
        }
    }
}
