using Presence.Testing;

namespace Presence.Cluster.Tests;

/// <summary>The cluster tests share one throwaway PostgreSQL server; each test cluster gets its own database.</summary>
[CollectionDefinition(Name)]
public sealed class ClusterCollection : ICollectionFixture<PostgresFixture>
{
    public const string Name = "cluster";
}
