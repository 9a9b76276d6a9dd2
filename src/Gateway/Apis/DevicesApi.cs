using System.Net.WebSockets;
using System.Text.Json;
using Presence.Gateway.Auth;
using Presence.Gateway.Cluster;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Apis;

/// <summary>The portal's device endpoints: list, read, delete, sessions, commands.</summary>
public static class DevicesApi
{
    public static RouteGroupBuilder MapDevicesApi(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/api/v1/devices");
        group.MapGet("", ListAsync).RequireAccess(Access.Viewer);
        group.MapGet("/{deviceId}", GetAsync).RequireAccess(Access.Viewer);
        group.MapDelete("/{deviceId}", DeleteAsync).RequireAccess(Access.Operator);
        group.MapGet("/{deviceId}/sessions", SessionsAsync).RequireAccess(Access.Viewer);
        group.MapPost("/{deviceId}/commands", CommandAsync).RequireAccess(Access.Operator);
        return group;
    }

    private static async Task<IResult> ListAsync(HttpContext context, ApiContext api)
    {
        var request = context.Request;
        var limitError = QueryArgs.Limit(request, 100, 1000, out var limit);
        var statusError = QueryArgs.Optional(request, "status", out var status);
        var prefixError = QueryArgs.OptionalDeviceId(request, "prefix", out var prefix);
        var afterError = QueryArgs.OptionalDeviceId(request, "after", out var after);
        var error = limitError ?? statusError ?? prefixError ?? afterError;
        var filter = status switch
        {
            null => StatusFilter.Any,
            "online" => StatusFilter.Online,
            "offline" => StatusFilter.Offline,
            _ => (StatusFilter?)null,
        };
        if (error is null && filter is null)
        {
            error = ApiError.Query("status", DeviceRules.Problems.Invalid);
        }

        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var page = await api.Store.ListDevicesAsync(api.TenantOf(context), new DeviceQuery(filter!.Value, prefix, after, limit), context.RequestAborted);
        return JsonBody.Json(200, (Page: page, Timeout: api.DefaultTimeout), static (writer, s) =>
        {
            writer.WriteStartObject();
            writer.WriteStartArray("devices");
            foreach (var device in s.Page.Devices)
            {
                PresenceJson.WriteDevice(writer, device, s.Timeout);
            }

            writer.WriteEndArray();
            writer.WriteString("next", s.Page.Next);
            writer.WriteEndObject();
        });
    }

    private static async Task<IResult> GetAsync(string deviceId, HttpContext context, IDeviceGrains grains, ApiContext api)
    {
        if (QueryArgs.PathDeviceId(deviceId) is { } error)
        {
            return new ApiErrorResult(error);
        }

        var device = await grains.GetAsync(new DeviceKey(api.TenantOf(context), deviceId), context.RequestAborted);
        return device is null
            ? new ApiErrorResult(ApiError.NotFound("no such device"))
            : JsonBody.Json(200, (Device: device, Timeout: api.DefaultTimeout), static (writer, s) => PresenceJson.WriteDevice(writer, s.Device, s.Timeout));
    }

    private static async Task<IResult> DeleteAsync(string deviceId, HttpContext context, IDeviceGrains grains, ApiContext api, GatewayRelay relay)
    {
        if (QueryArgs.PathDeviceId(deviceId) is { } error)
        {
            return new ApiErrorResult(error);
        }

        var key = new DeviceKey(api.TenantOf(context), deviceId);
        if (!await grains.RemoveAsync(key, context.RequestAborted))
        {
            return new ApiErrorResult(ApiError.NotFound("no such device"));
        }

        await relay.CloseChannelsAsync(key, "device removed", WebSocketCloseStatus.NormalClosure, context.RequestAborted);
        return Results.NoContent();
    }

    private static async Task<IResult> SessionsAsync(string deviceId, HttpContext context, IDeviceGrains grains, ApiContext api)
    {
        var limitError = QueryArgs.Limit(context.Request, 50, 1000, out var limit);
        var error = QueryArgs.PathDeviceId(deviceId) ?? limitError;
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var sessions = await grains.GetSessionsAsync(new DeviceKey(api.TenantOf(context), deviceId), limit, context.RequestAborted);
        return sessions is null
            ? new ApiErrorResult(ApiError.NotFound("no such device"))
            : JsonBody.Json(200, sessions, static (writer, list) =>
            {
                writer.WriteStartObject();
                writer.WriteStartArray("sessions");
                foreach (var session in list)
                {
                    PresenceJson.WriteSession(writer, session);
                }

                writer.WriteEndArray();
                writer.WriteEndObject();
            });
    }

    private static async Task<IResult> CommandAsync(string deviceId, HttpContext context, IDeviceGrains grains, ApiContext api, GatewayRelay relay)
    {
        if (QueryArgs.PathDeviceId(deviceId) is { } pathError)
        {
            return new ApiErrorResult(pathError);
        }

        var (command, error) = await JsonBody.ReadAsync(context.Request, static json => DeviceCommand.Parse(json));
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var key = new DeviceKey(api.TenantOf(context), deviceId);
        if (await grains.GetAsync(key, context.RequestAborted) is null)
        {
            return new ApiErrorResult(ApiError.NotFound("no such device"));
        }

        if (!await relay.SendCommandAsync(key, command!, context.RequestAborted))
        {
            return new ApiErrorResult(ApiError.NotConnected());
        }

        return JsonBody.Json(202, command!.CommandId, static (writer, id) =>
        {
            writer.WriteStartObject();
            writer.WriteString("command_id", id);
            writer.WriteString("status", "sent");
            writer.WriteEndObject();
        });
    }
}

/// <summary>A command for a device: <c>{"name": "...", "args": {...}}</c>, given an id when accepted.</summary>
public sealed record DeviceCommand(string CommandId, string Name, JsonElement? Args)
{
    public static (DeviceCommand?, ApiError?) Parse(System.Buffers.ReadOnlySequence<byte> json) => JsonObject.Parse<DeviceCommand>(json, static root =>
    {
        var name = JsonObject.RequiredString(root, "name", DeviceRules.MaxCommandNameLength, out var error);
        if (error is null && DeviceRules.CheckCommandName(name) is { } problem)
        {
            error = ApiError.Body("name", problem);
        }

        JsonElement? args = null;
        if (error is null && root.TryGetProperty("args", out var argsElement) && argsElement.ValueKind != JsonValueKind.Null)
        {
            if (argsElement.ValueKind != JsonValueKind.Object)
            {
                return (null, ApiError.Body("args", DeviceRules.Problems.WrongType));
            }

            args = argsElement.Clone();
        }

        return error is null ? (new DeviceCommand(Guid.NewGuid().ToString("N"), name, args), null) : (null, error);
    });
}
