using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Npgsql;
using Presence.Runtime.Storage;

namespace Presence.Storage.Postgres;

public static class PostgresServiceCollectionExtensions
{
    /// <summary>
    /// Stores devices, sessions and events in PostgreSQL (<c>ConnectionStrings:Presence</c>). Register before the silo:
    /// the store's start-up (migrations) must run before the silo claims its partitions.
    /// </summary>
    public static IServiceCollection AddPostgresStorage(this IServiceCollection services)
    {
        services.AddSingleton<IValidateOptions<PostgresOptions>, PostgresOptionsValidator>();
        services.AddOptions<PostgresOptions>()
            .Configure<IConfiguration>((options, configuration) => options.ConnectionString = configuration.GetConnectionString(PostgresOptions.Name))
            .ValidateOnStart();
        services.AddSingleton(sp =>
        {
            var builder = new NpgsqlDataSourceBuilder(sp.GetRequiredService<IOptions<PostgresOptions>>().Value.ConnectionString);
            var settings = builder.ConnectionStringBuilder;
            settings.ApplicationName ??= "presence";


            // The same few statements run all the time: let Npgsql prepare them.
            if (settings.MaxAutoPrepare == 0)
            {
                settings.MaxAutoPrepare = 32;
                settings.AutoPrepareMinUsages = 2;
            }

            return builder.Build();
        });
        services.AddSingleton<PostgresPresenceStore>();
        services.AddSingleton<IPresenceStore>(sp => sp.GetRequiredService<PostgresPresenceStore>());
        services.AddHostedService(sp => sp.GetRequiredService<PostgresPresenceStore>());
        services.AddSingleton<IApiKeyStore, PostgresApiKeyStore>();
        return services;
    }
}

/// <summary><c>ConnectionStrings:Presence</c>.</summary>
public sealed class PostgresOptions
{
    public const string Name = "Presence";
    public string? ConnectionString { get; set; }
}

/// <summary>Checks the connection string without ever repeating it (it may hold a password).</summary>
internal sealed class PostgresOptionsValidator : IValidateOptions<PostgresOptions>
{
    public ValidateOptionsResult Validate(string? name, PostgresOptions options)
    {
        if (string.IsNullOrWhiteSpace(options.ConnectionString))
        {
            return ValidateOptionsResult.Fail("ConnectionStrings:Presence is required when Presence:Storage:Provider is 'postgres'");
        }

        try
        {
            var settings = new NpgsqlConnectionStringBuilder(options.ConnectionString);
            return string.IsNullOrWhiteSpace(settings.Host)
                ? ValidateOptionsResult.Fail("ConnectionStrings:Presence must name a Host")
                : ValidateOptionsResult.Success;
        }
        catch (ArgumentException)
        {
            return ValidateOptionsResult.Fail("ConnectionStrings:Presence is not a valid PostgreSQL connection string (expected Host=...;Database=...;Username=...;Password=...)");
        }
    }
}
