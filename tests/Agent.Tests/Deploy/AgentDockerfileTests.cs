using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Presence.Agent.Tests.Deploy;

/// <summary>
/// <c>deploy/agent.Dockerfile</c> checked as a file (there is no Docker engine to build it here): its stages, its
/// user, its entry point against the agent's real assembly, and that what it copies is all the agent needs.
/// </summary>
public sealed partial class AgentDockerfileTests
{
    private static readonly string Root = RepositoryRoot();
    private static readonly string[] Lines = File.ReadAllLines(Path.Combine(Root, "deploy", "agent.Dockerfile"))
        .Select(l => l.Trim())
        .Where(l => l.Length > 0 && !l.StartsWith('#'))
        .ToArray();

    [Fact]
    public void It_builds_with_the_SDK_and_runs_on_the_runtime_image()
    {
        var stages = Lines.Where(l => l.StartsWith("FROM ", StringComparison.Ordinal)).ToList();

        Assert.Equal(2, stages.Count);
        Assert.Matches(@"^FROM mcr\.microsoft\.com/dotnet/sdk:10\.0 AS build$", stages[0]);
        Assert.Matches(@"^FROM mcr\.microsoft\.com/dotnet/runtime:10\.0( AS \w+)?$", stages[1]);
        Assert.Contains(Lines, l => l.StartsWith("COPY --from=build ", StringComparison.Ordinal));
    }

    [Fact]
    public void It_runs_as_a_non_root_user_in_the_final_stage()
    {
        var final = Lines.SkipWhile(l => !l.StartsWith("FROM mcr.microsoft.com/dotnet/runtime", StringComparison.Ordinal)).ToList();
        var user = Assert.Single(final, l => l.StartsWith("USER ", StringComparison.Ordinal))["USER ".Length..].Trim();

        Assert.DoesNotMatch(@"^(root|0)(:.*)?$", user);
    }

    [Fact]
    public void Its_entry_point_is_the_agents_assembly()
    {
        var entry = Assert.Single(Lines, l => l.StartsWith("ENTRYPOINT ", StringComparison.Ordinal));
        var command = JsonSerializer.Deserialize<string[]>(entry["ENTRYPOINT ".Length..])!;

        Assert.Equal(["dotnet", typeof(AgentOptions).Assembly.GetName().Name + ".dll"], command);
    }

    [Fact]
    public void What_it_copies_exists_and_is_all_the_agent_builds_from()
    {
        foreach (var copy in Lines.Where(l => l.StartsWith("COPY ", StringComparison.Ordinal) && !l.Contains("--from=", StringComparison.Ordinal)))
        {
            var parts = copy.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1..^1];
            Assert.All(parts, source => Assert.True(File.Exists(Path.Combine(Root, source)) || Directory.Exists(Path.Combine(Root, source)), $"{copy}: {source} is missing"));
        }

        // Only src/Agent is copied: a project reference would need its project copied too.
        var project = XDocument.Load(Path.Combine(Root, "src", "Agent", "Agent.csproj"));
        Assert.Empty(project.Descendants("ProjectReference"));
        Assert.Contains(Lines, l => PublishPattern().IsMatch(l));
    }

    [GeneratedRegex(@"^RUN dotnet publish src/Agent/Agent\.csproj .*--configuration Release")]
    private static partial Regex PublishPattern();

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Presence.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("the repository root (Presence.sln) was not found above the test's directory");
    }
}
