using System.Buffers;
using Presence.Gateway.Cluster;
using Presence.Gateway.Auth;
using Presence.Gateway.Errors;
using Presence.Grains.Abstractions;
using Presence.Runtime.Storage;

namespace Presence.Gateway.Apis;

/// <summary>
/// Tenant API keys (admin role): create (the key is shown once) and revoke (at once). Admins of <c>default</c>
/// manage every tenant's keys, creating a tenant with its first key; other admins only their own tenant's.
/// </summary>
public static class ApiKeysApi
{
    public static IEndpointRouteBuilder MapApiKeysApi(this IEndpointRouteBuilder app)
    {
        app.MapPost("/api/v1/tenants/{tenantId}/api-keys", CreateAsync).RequireAccess(Access.Admin);
        app.MapDelete("/api/v1/api-keys/{keyId}", RevokeAsync).RequireAccess(Access.Admin);
        return app;
    }

    private static bool Manages(Caller caller, string tenantId) => caller.TenantId == DeviceKey.DefaultTenant || caller.TenantId == tenantId;

    private static async Task<IResult> CreateAsync(string tenantId, HttpContext context, ApiKeys keys)
    {
        if (TenantRules.Check(tenantId) is { } problem)
        {
            return new ApiErrorResult(ApiError.Query("tenant_id", problem));
        }

        if (!Manages(context.Caller(), tenantId))
        {
            return new ApiErrorResult(ApiError.Forbidden("an admin key manages only the keys of its own tenant"));
        }

        var (request, error) = await JsonBody.ReadAsync(context.Request, ParseCreate);
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var (record, key) = await keys.CreateAsync(tenantId, request.Role, request.Name, context.RequestAborted);
        return JsonBody.Json(201, (Record: record, Key: key), static (writer, s) =>
        {
            writer.WriteStartObject();
            writer.WriteString("key_id", s.Record.KeyId);
            writer.WriteString("api_key", s.Key);
            writer.WriteString("tenant_id", s.Record.TenantId);
            writer.WriteString("role", RoleName(s.Record.Role));
            writer.WriteString("name", s.Record.Name);
            PresenceJson.WriteTime(writer, "created_at", s.Record.CreatedAt);
            writer.WriteEndObject();
        });
    }

    private static async Task<IResult> RevokeAsync(string keyId, HttpContext context, ApiKeys keys, GatewayRelay relay)
    {
        if (keyId == ApiKeys.BootstrapKeyId)
        {
            return new ApiErrorResult(ApiError.Conflict("the bootstrap key comes from Presence:Auth:AdminApiKey: change the configuration to revoke it"));
        }

        if (!ApiKeys.IsKeyId(keyId))
        {
            return new ApiErrorResult(ApiError.Query("key_id", DeviceRules.Problems.Invalid));
        }

        // Another tenant's key is not found, as if it did not exist.
        var key = await keys.FindAsync(keyId, context.RequestAborted);
        if (key is not { RevokedAt: null } || !Manages(context.Caller(), key.TenantId) || !await keys.RevokeAsync(keyId, context.RequestAborted))
        {
            return new ApiErrorResult(ApiError.NotFound("no such API key"));
        }

        await relay.RevokeKeyAsync(keyId, context.RequestAborted);
        return Results.NoContent();
    }

    public static string RoleName(ApiRole role) => role switch
    {
        ApiRole.Admin => "admin",
        ApiRole.Operator => "operator",
        _ => "viewer",
    };

    private static ((ApiRole Role, string Name), ApiError?) ParseCreate(ReadOnlySequence<byte> json) => JsonObject.Parse<(ApiRole Role, string Name)>(json, static root =>
    {
        var roleText = JsonObject.RequiredString(root, "role", 16, out var error);
        ApiRole? role = roleText switch
        {
            "viewer" => ApiRole.Viewer,
            "operator" => ApiRole.Operator,
            "admin" => ApiRole.Admin,
            _ => null,
        };
        if (error is null && role is null)
        {
            error = ApiError.Body("role", DeviceRules.Problems.Invalid);
        }

        var name = error is null ? JsonObject.RequiredString(root, "name", 128, out error) : "";
        if (error is null && DeviceRules.CheckPrintable(name, 1, 128) is { } problem)
        {
            error = ApiError.Body("name", problem);
        }

        return ((role ?? ApiRole.Viewer, name), error);
    });
}
