using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Presence.Runner.Hosting;

namespace Presence.Runner.Scenarios;

/// <summary>
/// What every scenario gets: where the programs are, where results go, and its options, each with a quick-mode and a
/// full-mode default (<c>--full</c> switches to the budgets' sizes, e.g. 1M devices).
/// </summary>
internal sealed class ScenarioContext(BenchPaths paths, string outDir, bool full, IReadOnlyDictionary<string, string> options, CancellationToken cancellationToken)
{
    public BenchPaths Paths { get; } = paths;

    public string OutDir { get; } = outDir;

    public string LogDir => Path.Combine(OutDir, "logs");

    public bool Full { get; } = full;

    public string Mode => Full ? "full" : "quick";

    public CancellationToken CancellationToken { get; } = cancellationToken;

    public double Number(string name, double quick, double full) =>
        options.TryGetValue(name, out var text)
            ? double.Parse(text, CultureInfo.InvariantCulture)
            : Full ? full : quick;

    public int Int(string name, int quick, int full) => (int)Number(name, quick, full);

    public string? Text(string name) => options.GetValueOrDefault(name);

    public bool Flag(string name) => options.TryGetValue(name, out var text) && text != "false";

    public IReadOnlyList<int> IntList(string name, string quick, string full) =>
        (options.TryGetValue(name, out var text) ? text : Full ? full : quick)
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => int.Parse(t, CultureInfo.InvariantCulture))
            .ToArray();

    /// <summary>A result: the scenario's figures plus the machine and mode, written to <c>{scenario}.json</c> in the output folder.</summary>
    public JsonObject NewResult(string scenario, JsonObject parameters) => new()
    {
        ["scenario"] = scenario,
        ["mode"] = Mode,
        ["started_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        ["machine"] = ProcStats.Machine(),
        ["parameters"] = parameters,
    };

    public string Save(JsonObject result)
    {
        result["finished_at"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture);
        result["load_average_1m_at_end"] = ProcStats.LoadAverage();
        Directory.CreateDirectory(OutDir);
        var path = Path.Combine(OutDir, $"{result["scenario"]}.json");
        File.WriteAllText(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }
}
