using System.Reflection;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Presence.Storage.Postgres;

/// <summary>
/// Creates and upgrades the schema with the versioned SQL scripts embedded in this assembly
/// (<c>Migrations/NNNN_name.sql</c>), each in its own transaction, under a session advisory lock so that
/// processes starting together apply each script exactly once. Also fixes the partition count on first start.
/// </summary>
internal static partial class Schema
{
    /// <summary>The advisory lock key of migrations ("presence" in ASCII).</summary>
    private const long LockKey = 0x70726573656e6365;

    public static IReadOnlyList<(int Version, string Name, string Sql)> Migrations { get; } = Load();

    /// <summary>Applies missing migrations and returns how many were applied.</summary>
    public static async Task<int> MigrateAsync(NpgsqlDataSource data, int partitions, ILogger log, CancellationToken cancellationToken)
    {
        await using var connection = await data.OpenConnectionAsync(cancellationToken);
        await Execute(connection, $"SELECT pg_advisory_lock({LockKey})", cancellationToken);
        try
        {
            await Execute(connection,
                "CREATE TABLE IF NOT EXISTS presence_schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
                cancellationToken);
            var applied = new HashSet<int>();
            await using (var command = new NpgsqlCommand("SELECT version FROM presence_schema_migrations", connection))
            await using (var row = await command.ExecuteReaderAsync(cancellationToken))
            {
                while (await row.ReadAsync(cancellationToken))
                {
                    applied.Add(row.GetInt32(0));
                }
            }

            var count = 0;
            foreach (var (version, name, sql) in Migrations.Where(m => !applied.Contains(m.Version)))
            {
                await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
                await using (var command = new NpgsqlCommand(sql, connection, transaction))
                {
                    await command.ExecuteNonQueryAsync(cancellationToken);
                }

                await using (var record = new NpgsqlCommand("INSERT INTO presence_schema_migrations (version, name) VALUES (@v, @n)", connection, transaction))
                {
                    record.Parameters.AddWithValue("v", version);
                    record.Parameters.AddWithValue("n", name);
                    await record.ExecuteNonQueryAsync(cancellationToken);
                }

                await transaction.CommitAsync(cancellationToken);
                LogApplied(log, version, name);
                count++;
            }

            await FixPartitionsAsync(connection, partitions, cancellationToken);
            return count;
        }
        finally
        {
            await Execute(connection, $"SELECT pg_advisory_unlock({LockKey})", CancellationToken.None);
        }
    }

    /// <summary>The partition count is chosen when the database is first initialised and can never change.</summary>
    private static async Task FixPartitionsAsync(NpgsqlConnection connection, int partitions, CancellationToken cancellationToken)
    {
        var count = partitions.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using (var read = new NpgsqlCommand(
            "INSERT INTO presence_meta (key, value) VALUES ('partitions', @p) ON CONFLICT (key) DO NOTHING; " +
            "SELECT value FROM presence_meta WHERE key = 'partitions'", connection))
        {
            read.Parameters.AddWithValue("p", count);
            var stored = (string)(await read.ExecuteScalarAsync(cancellationToken))!;
            if (stored != count)
            {
                // Checked before any partition row is written: a misconfigured process changes nothing.
                throw new StorageConfigurationException(
                    $"Presence:Cluster:Partitions is {partitions} but the database was initialised with {stored}; the partition count cannot change");
            }
        }

        await using var insert = new NpgsqlCommand(
            "INSERT INTO presence_partitions (partition) SELECT g FROM generate_series(0, @n - 1) g ON CONFLICT DO NOTHING", connection);
        insert.Parameters.AddWithValue("n", partitions);
        await insert.ExecuteNonQueryAsync(cancellationToken);
    }

    private static async Task Execute(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static List<(int, string, string)> Load()
    {
        var assembly = Assembly.GetExecutingAssembly();
        return assembly.GetManifestResourceNames()
            .Where(name => name.StartsWith("Migrations.", StringComparison.Ordinal) && name.EndsWith(".sql", StringComparison.Ordinal))
            .Select(name =>
            {
                var file = name["Migrations.".Length..^".sql".Length];
                using var stream = assembly.GetManifestResourceStream(name)!;
                using var reader = new StreamReader(stream);
                return (int.Parse(file[..4], System.Globalization.CultureInfo.InvariantCulture), file, reader.ReadToEnd());
            })
            .OrderBy(m => m.Item1)
            .ToList();
    }

    [LoggerMessage(EventId = 3030, Level = LogLevel.Information, Message = "Schema migration {Version} ({Name}) applied")]
    private static partial void LogApplied(ILogger logger, int version, string name);
}

/// <summary>The configuration does not fit the database (start-up stops with this message).</summary>
public sealed class StorageConfigurationException(string message) : Exception(message);
