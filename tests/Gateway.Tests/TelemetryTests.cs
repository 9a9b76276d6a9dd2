using System.Net;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Presence.Gateway.Tests;

/// <summary>OTLP export is on only when its endpoint is configured; an unreachable collector never affects serving.</summary>
public sealed class TelemetryTests
{
    [Fact]
    public async Task Without_an_otlp_endpoint_nothing_is_exported()
    {
        await using var server = new PresenceServer();

        Assert.Null(server.Services.GetService<MeterProvider>());
        Assert.Null(server.Services.GetService<TracerProvider>());
    }

    [Fact]
    public async Task With_an_unreachable_otlp_endpoint_the_gateway_still_serves()
    {
        await using var server = new OtlpServer();

        using var response = await server.HeartbeatAsync("otel-device");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.NotNull(server.Services.GetService<MeterProvider>());
        Assert.NotNull(server.Services.GetService<TracerProvider>());
    }

    private sealed class OtlpServer() : PresenceServer(new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://127.0.0.1:9" });
}
