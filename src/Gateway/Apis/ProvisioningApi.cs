using System.Buffers;
using System.Text.Json;
using Presence.Gateway.Auth;
using Presence.Gateway.Cluster;
using Presence.Gateway.Errors;
using Presence.Gateway.Streaming;
using Presence.Grains.Abstractions;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Presence.Gateway.Apis;

/// <summary>
/// <c>PUT /api/v1/devices/{id}</c> (provisioning: create, update, rotate the secret) and
/// <c>POST /api/v1/devices/auth</c> (a device trades its secret for a token).
/// </summary>
public static class ProvisioningApi
{
    public static IEndpointRouteBuilder MapProvisioningApi(this IEndpointRouteBuilder app)
    {
        app.MapPut("/api/v1/devices/{deviceId}", ProvisionAsync).RequireAccess(Access.Operator);
        app.MapPost("/api/v1/devices/auth", AuthenticateAsync).RequireAccess(Access.Public);
        return app;
    }

    private static async Task<IResult> ProvisionAsync(
        string deviceId, HttpContext context, IDeviceGrains grains, ApiContext api, GatewayRelay relay, IOptions<AuthOptions> auth)
    {
        var rotateError = QueryArgs.Optional(context.Request, "rotate_secret", out var rotateText);
        var rotate = rotateText is "true";
        var error = QueryArgs.PathDeviceId(deviceId) ?? rotateError
            ?? (rotateText is null or "true" or "false" ? null : ApiError.Query("rotate_secret", DeviceRules.Problems.Invalid));
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        // An empty body is allowed (e.g. only ?rotate_secret=true); otherwise it is JSON like any other.
        var (input, bodyError) = context.Request.ContentLength == 0 || context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == false
            ? (new ProvisionInput(), null)
            : await JsonBody.ReadAsync(context.Request, ParseProvision);
        if (bodyError is not null)
        {
            return new ApiErrorResult(bodyError);
        }

        var key = new DeviceKey(api.TenantOf(context), deviceId);

        // A new device always gets a secret (so it can use device-token mode whenever that is turned on); an existing
        // one only when asked. Hashing is slow by design: it runs here, never inside the device's partition.
        var existing = rotate ? null : await grains.GetAsync(key, context.RequestAborted);
        string? secret = null;
        if (rotate || existing is null)
        {
            input = input! with { Credential = SecretHasher.Create(key.TenantId, auth.Value.SecretHashIterations, out secret) };
        }

        // Created by someone else between the read and this write: the update still sets this secret, so it is shown.
        var result = await grains.ProvisionAsync(key, input!, context.RequestAborted);

        if (rotate && !result.Created)
        {
            // Old tokens are refused by the grain from now on; channels opened with one are closed.
            await relay.CloseChannelsAsync(key, "device secret rotated", SocketMessages.Unauthorized, context.RequestAborted);
        }

        return JsonBody.Json(result.Created ? 201 : 200, (result.Device, Timeout: api.DefaultTimeout, Secret: secret), static (writer, s) =>
            PresenceJson.WriteDevice(writer, s.Device, s.Timeout, s.Secret));
    }

    private static async Task<IResult> AuthenticateAsync(
        HttpContext context, IDeviceGrains grains, ApiContext api, DeviceTokens tokens, FailureLimiter failures, IOptions<AuthOptions> auth)
    {
        if (!auth.Value.UsesDeviceTokens)
        {
            return new ApiErrorResult(ApiError.NotFound("device tokens are not enabled: Presence:Auth:Mode is not 'device-token'"));
        }

        var source = AuthMiddleware.SourceOf(context);
        if (failures.IsBlocked(source, out var retryAfter))
        {
            return new ApiErrorResult(ApiError.Limited(retryAfter));
        }

        var (request, error) = await JsonBody.ReadAsync(context.Request, ParseAuth);
        if (error is not null)
        {
            return new ApiErrorResult(error);
        }

        var (deviceId, secret) = request;
        var tenant = SecretHasher.TryReadTenant(secret, out var named) ? named : DeviceKey.DefaultTenant;
        var key = new DeviceKey(tenant, deviceId);
        var deviceLimit = $"dev:{tenant}/{deviceId}";
        if (failures.IsBlocked(deviceLimit, out retryAfter))
        {
            return new ApiErrorResult(ApiError.Limited(retryAfter));
        }

        var device = await grains.GetAsync(key, context.RequestAborted);
        if (!SecretHasher.Verify(device?.Credential, secret, auth.Value.SecretHashIterations) || device?.Credential is not { } credential)
        {
            failures.Failed(source);
            failures.Failed(deviceLimit);
            return new ApiErrorResult(ApiError.Unauthorized());
        }

        var token = tokens.Issue(key, credential.Stamp, out var expiresAt);
        return JsonBody.Json(200, (Token: token, ExpiresAt: expiresAt, DeviceId: deviceId, Api: api), static (writer, s) =>
        {
            writer.WriteStartObject();
            writer.WriteString("token", s.Token);
            writer.WriteString("token_type", "Bearer");
            PresenceJson.WriteTime(writer, "expires_at", s.ExpiresAt);
            writer.WriteString("device_id", s.DeviceId);
            writer.WriteNumber("poll_interval_s", PresenceJson.WholeSeconds(s.Api.PollInterval));
            writer.WriteEndObject();
        });
    }

    private static (ProvisionInput?, ApiError?) ParseProvision(ReadOnlySequence<byte> json) => JsonObject.Parse<ProvisionInput>(json, static root =>
    {
        string? name = null;
        TimeSpan? timeout = null;
        Dictionary<string, string>? labels = null;
        if (root.TryGetProperty("device_name", out var nameElement) && nameElement.ValueKind != JsonValueKind.Null)
        {
            if (nameElement.ValueKind != JsonValueKind.String)
            {
                return (null, ApiError.Body("device_name", DeviceRules.Problems.WrongType));
            }

            name = nameElement.GetString()!;
            if (DeviceRules.CheckDeviceName(name) is { } problem)
            {
                return (null, ApiError.Body("device_name", problem));
            }

            name = DeviceRules.NormalizeDeviceName(name);
        }

        if (root.TryGetProperty("timeout_s", out var timeoutElement) && timeoutElement.ValueKind != JsonValueKind.Null)
        {
            if (timeoutElement.ValueKind != JsonValueKind.Number)
            {
                return (null, ApiError.Body("timeout_s", DeviceRules.Problems.WrongType));
            }

            if (!timeoutElement.TryGetDouble(out var seconds) || !double.IsFinite(seconds) || seconds < 1 || seconds > DeviceRules.MaxTimeoutSeconds)
            {
                return (null, ApiError.Body("timeout_s", DeviceRules.Problems.OutOfRange));
            }

            timeout = TimeSpan.FromSeconds(seconds);
        }

        if (root.TryGetProperty("labels", out var labelsElement) && labelsElement.ValueKind != JsonValueKind.Null)
        {
            if (labelsElement.ValueKind != JsonValueKind.Object)
            {
                return (null, ApiError.Body("labels", DeviceRules.Problems.WrongType));
            }

            labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var label in labelsElement.EnumerateObject())
            {
                var problem = labels.Count == DeviceRules.MaxLabels ? DeviceRules.Problems.TooMany
                    : DeviceRules.CheckLabelKey(label.Name) ?? (labels.ContainsKey(label.Name) ? DeviceRules.Problems.Duplicate : null)
                    ?? (label.Value.ValueKind != JsonValueKind.String ? DeviceRules.Problems.WrongType : DeviceRules.CheckLabelValue(label.Value.GetString()));
                if (problem is not null)
                {
                    return (null, ApiError.Body("labels", problem));
                }

                labels[label.Name] = label.Value.GetString()!;
            }
        }

        return (new ProvisionInput(name, timeout, labels), null);
    });

    private static ((string DeviceId, string Secret), ApiError?) ParseAuth(ReadOnlySequence<byte> json) => JsonObject.Parse<(string DeviceId, string Secret)>(json, static root =>
    {
        var deviceId = JsonObject.RequiredString(root, "device_id", DeviceRules.MaxDeviceIdLength, out var error);
        if (error is null && DeviceRules.CheckDeviceId(deviceId) is { } problem)
        {
            error = ApiError.Body("device_id", problem);
        }

        var secret = error is null ? JsonObject.RequiredString(root, "secret", 256, out error) : "";
        return ((deviceId, secret), error);
    });
}
