using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Presence.Gateway.Hosting;

/// <summary>
/// OTLP export of Presence's meters and activity sources (and ASP.NET Core's), on when
/// <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> is set; the exporter reads the standard <c>OTEL_*</c> variables itself.
/// Library code only emits through <c>System.Diagnostics</c>; this host is the one place that exports.
/// </summary>
public static class Telemetry
{
    public const string EndpointVariable = "OTEL_EXPORTER_OTLP_ENDPOINT";

    private static readonly string[] Meters = ["Presence.*", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel"];
    private static readonly string[] Sources = ["Presence.*", "Microsoft.AspNetCore"];

    public static WebApplicationBuilder AddPresenceTelemetry(this WebApplicationBuilder builder)
    {
        if (string.IsNullOrWhiteSpace(builder.Configuration[EndpointVariable]))
        {
            return builder;
        }

        builder.Services.AddSingleton(_ => Sdk.CreateMeterProviderBuilder().AddMeter(Meters).AddOtlpExporter().Build());
        builder.Services.AddSingleton(_ => Sdk.CreateTracerProviderBuilder().AddSource(Sources).AddOtlpExporter().Build());
        builder.Services.AddHostedService<TelemetryStarter>();
        return builder;
    }

    /// <summary>Creates the providers at start-up (they listen from then on) and lets the container dispose them, flushing, at stop.</summary>
    private sealed class TelemetryStarter(MeterProvider meters, TracerProvider traces) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken)
        {
            meters.ForceFlush(2_000);
            traces.ForceFlush(2_000);
            return Task.CompletedTask;
        }
    }
}
