namespace Presence.Runner.Hosting;

/// <summary>Where the built programs are: found from the repository root (the folder holding Presence.sln).</summary>
internal sealed class BenchPaths(string root, string configuration)
{
    public string Root { get; } = root;

    public string Gateway => Built("src/Gateway", "Presence.Gateway.dll");

    /// <summary>The cluster silo (src/Silo): grains and storage, serving gateways in cluster client mode.</summary>
    public string Silo => Built("src/Silo", "Presence.Silo.dll");

    public string BareKestrel => Built("bench/BareKestrel", "Presence.BareKestrel.dll");

    public string LoadGen => Built("bench/LoadGen", "Presence.LoadGen.dll");

    /// <summary>The device agent, whose <c>--simulate</c> is the fleet simulator.</summary>
    public string Agent => Built("src/Agent", "Presence.Agent.dll");

    public static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Presence.sln")) && Directory.Exists(Path.Combine(dir.FullName, "bench")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("cannot find the repository root (Presence.sln) above the runner; pass --root");
    }

    private string Built(string project, string dll)
    {
        var path = Path.Combine(Root, project, "bin", configuration, "net10.0", dll);
        return File.Exists(path) ? path : throw new FileNotFoundException($"{path} is missing: build {project} in {configuration} first (bench/run.sh does)");
    }
}
