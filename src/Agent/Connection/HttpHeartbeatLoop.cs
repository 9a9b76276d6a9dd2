using Presence.Agent.Reporting;

namespace Presence.Agent.Connection;

/// <summary>Heartbeats over <c>POST /api/v1/heartbeat</c> at the gateway's interval until stopped.</summary>
internal sealed class HttpHeartbeatLoop(GatewayClient gateway, DeviceCredentials credentials, HeartbeatComposer composer, Pacer pacer)
{
    public async Task RunAsync(CancellationToken stop)
    {
        while (true)
        {
            var attempt = await BeatAsync(stop);
            var (wait, why) = attempt.IsAccepted ? pacer.Accepted(attempt.PollInterval) : pacer.Failed(attempt);
            await pacer.Delay(wait, why, stop);
        }
    }

    private async Task<Attempt> BeatAsync(CancellationToken stop)
    {
        var (failure, fetched) = await credentials.EnsureAsync(stop);
        if (failure is { } tokenFailure)
        {
            return tokenFailure;
        }

        var body = await composer.ComposeAsync(frame: false, stop);
        var attempt = await gateway.HeartbeatAsync(body, credentials, stop);
        if (attempt.Kind == AttemptKind.Unauthorized && credentials.Mode == AuthMode.DeviceToken && !fetched)
        {
            // The token was refused (expired early, signing key changed, secret rotated): a new one, and the heartbeat again.
            credentials.Invalidate();
            (failure, _) = await credentials.EnsureAsync(stop);
            if (failure is { } renewalFailure)
            {
                return renewalFailure;
            }

            attempt = await gateway.HeartbeatAsync(body, credentials, stop);
        }

        if (attempt.Kind == AttemptKind.Unauthorized)
        {
            credentials.Invalidate();
            return attempt with { Reason = credentials.Describe401(attempt.Reason) };
        }

        return attempt;
    }
}
