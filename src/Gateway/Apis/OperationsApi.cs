using Presence.Gateway.Auth;
using Presence.Gateway.Errors;
using Presence.Gateway.Cluster;

namespace Presence.Gateway.Apis;

/// <summary>Stats, cluster view and health: what operators and load balancers ask.</summary>
public static class OperationsApi
{
    public static IEndpointRouteBuilder MapOperationsApi(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/v1/stats", StatsAsync).RequireAccess(Access.Viewer);
        app.MapGet("/api/v1/cluster", ClusterAsync).RequireAccess(Access.Operator);
        app.MapGet("/healthz", static () => JsonBody.Json(200, "ok", WriteStatus));
        app.MapGet("/readyz", static (ISiloDirectory silos) => silos.IsReady
            ? JsonBody.Json(200, "ready", WriteStatus)
            : new ApiErrorResult(ApiError.ServiceUnavailable("not ready: storage unreachable or partitions not owned", 2)));
        return app;
    }

    private static async Task<IResult> StatsAsync(HttpContext context, ApiContext api, ISiloDirectory silos)
    {
        var tenant = api.TenantOf(context);
        var now = api.Now;
        var counts = await api.Store.CountDevicesAsync(tenant, now.AddHours(-24), context.RequestAborted);
        var heartbeats = await silos.HeartbeatsLastMinuteAsync(tenant, context.RequestAborted);
        return JsonBody.Json(200, (Counts: counts, Heartbeats: heartbeats), static (writer, s) =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("devices_total", s.Counts.Total);
            writer.WriteNumber("online", s.Counts.Online);
            writer.WriteNumber("offline", s.Counts.Total - s.Counts.Online);
            writer.WriteNumber("new_last_24h", s.Counts.NewSince);
            writer.WriteNumber("heartbeats_last_minute", s.Heartbeats);
            writer.WriteEndObject();
        });
    }

    private static async Task<IResult> ClusterAsync(HttpContext context, ISiloDirectory silos, ApiContext api)
    {
        // Silos and their device counts span every tenant: infrastructure, for the default tenant's operators only.
        if (api.TenantOf(context) != Grains.Abstractions.DeviceKey.DefaultTenant)
        {
            return new ApiErrorResult(ApiError.Forbidden("the cluster view is for operators of the default tenant"));
        }

        var cluster = await silos.DescribeAsync($"{context.Request.Scheme}://{context.Request.Host}", context.RequestAborted);
        return JsonBody.Json(200, cluster, static (writer, c) =>
        {
            writer.WriteStartObject();
            writer.WriteNumber("partitions_total", c.PartitionsTotal);
            writer.WriteNumber("partitions_unowned", c.PartitionsUnowned);
            writer.WriteStartArray("silos");
            foreach (var silo in c.Silos)
            {
                writer.WriteStartObject();
                writer.WriteString("silo_id", silo.SiloId);
                writer.WriteString("address", silo.Address);
                writer.WriteString("status", silo.Status);
                writer.WriteNumber("partitions", silo.Partitions);
                writer.WriteNumber("devices", silo.Devices);
                Grains.Abstractions.PresenceJson.WriteTime(writer, "started_at", silo.StartedAt);
                Grains.Abstractions.PresenceJson.WriteTime(writer, "last_heartbeat_at", silo.LastHeartbeatAt);
                writer.WriteEndObject();
            }

            writer.WriteEndArray();
            writer.WriteEndObject();
        });
    }

    private static void WriteStatus(System.Text.Json.Utf8JsonWriter writer, string status)
    {
        writer.WriteStartObject();
        writer.WriteString("status", status);
        writer.WriteEndObject();
    }
}
