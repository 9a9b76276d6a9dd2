using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Presence.Agent.Simulation.Http;

namespace Presence.Agent.Simulation;

/// <summary>What the gateway told the first simulated device.</summary>
/// <param name="AnsweredAt">When the 200 came, on the run's clock; null when none came.</param>
/// <param name="Refusal">Why the run cannot go on (the gateway refuses the simulator's heartbeats), or null.</param>
internal sealed record FirstHeartbeatOutcome(long? AnsweredAt, double PollIntervalSeconds, double TimeoutSeconds, string? Refusal);

/// <summary>
/// Device 0's first heartbeat, sent before the fleet starts: its answer says how often devices should heartbeat
/// (<c>poll_interval_s</c>) and when the gateway considers them offline (<c>timeout_s</c>), and proves the address and
/// credentials. A refusal that retrying cannot change (401, 403, 404, 422...) ends the run; an unavailable gateway
/// (no connection, 429, 503, 5xx) is retried with the agent's backoff, 1 s, 3 s, 9 s, then every 30 s.
/// </summary>
internal static class FirstHeartbeat
{
    /// <summary>What a gateway that does not say answers (the contract's defaults).</summary>
    private const double DefaultPollInterval = 30;
    private const double DefaultTimeout = 90;

    private static readonly TimeSpan[] Backoff = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(9), TimeSpan.FromSeconds(30)];

    public static async Task<FirstHeartbeatOutcome> SendAsync(
        FleetPlan plan, HeartbeatRequests requests, TimeProvider time, Alarm alarm, TextWriter output, HeartbeatTally tally, CancellationToken stopping)
    {
        var request = (byte[])requests.Template.Clone();
        var random = Xorshift.Seed(plan.Seed, -1);
        requests.Patch(request, 0, ref random);
        var body = request.AsMemory(requests.BodyOffset, requests.BodyLength);
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false, UseCookies = false, ConnectTimeout = TimeSpan.FromSeconds(5) })
        {
            Timeout = TimeSpan.FromSeconds(10),
        };
        for (var attempt = 0; !stopping.IsCancellationRequested; attempt++)
        {
            var started = Stopwatch.GetTimestamp();
            string problem;
            try
            {
                using var message = new HttpRequestMessage(HttpMethod.Post, plan.Endpoint) { Content = new ReadOnlyMemoryContent(body) };
                message.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                if (plan.SharedSecret is { } secret)
                {
                    message.Headers.Add("X-Connect-Secret", secret);
                }

                using var response = await http.SendAsync(message, stopping);
                var text = await response.Content.ReadAsStringAsync(stopping);
                var status = (int)response.StatusCode;
                tally.Record(status, Stopwatch.GetTimestamp() - started);
                if (status == 200)
                {
                    var (interval, timeout) = Read(text);
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"first heartbeat ({requests.DeviceId(0)}) answered 200 in {Stopwatch.GetElapsedTime(started).TotalMilliseconds:F1} ms: poll_interval_s {interval}, timeout_s {timeout}"));
                    return new FirstHeartbeatOutcome(time.GetTimestamp(), interval, timeout, null);
                }

                if (IsRefusal(response.StatusCode))
                {
                    return new FirstHeartbeatOutcome(null, 0, 0, Refusal(status, text, plan));
                }

                problem = $"answered {status} {ErrorCode(text)}".TrimEnd();
            }
            catch (HttpRequestException e)
            {
                tally.Record(HeartbeatTally.NoAnswer, 0);
                problem = $"cannot connect ({e.HttpRequestError}: {e.InnerException?.Message ?? e.Message})";
            }
            catch (TaskCanceledException) when (!stopping.IsCancellationRequested)
            {
                tally.Record(HeartbeatTally.NoAnswer, 0);
                problem = "no answer within 10 s";
            }

            var wait = Backoff[Math.Min(attempt, Backoff.Length - 1)];
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"first heartbeat to {plan.Endpoint}: {problem}; retrying in {wait.TotalSeconds:F0} s"));
            await alarm.WaitAsync(wait);
        }

        return new FirstHeartbeatOutcome(null, 0, 0, null);
    }

    /// <summary>4xx other than 408 and 429: the same heartbeat would be refused again.</summary>
    private static bool IsRefusal(HttpStatusCode status) =>
        (int)status is >= 400 and < 500 && status is not HttpStatusCode.RequestTimeout and not HttpStatusCode.TooManyRequests;

    private static string Refusal(int status, string body, FleetPlan plan)
    {
        var hint = status switch
        {
            401 when plan.SharedSecret is null => "the gateway wants credentials: --shared-secret S for a gateway in shared-secret mode (device-token mode cannot be simulated)",
            401 => "the gateway did not accept --shared-secret (or is not in shared-secret mode; device-token mode cannot be simulated)",
            403 => "the gateway forbids these heartbeats",
            404 or 405 => $"is {plan.Endpoint.GetLeftPart(UriPartial.Authority)} a Presence gateway?",
            _ => "the simulator's heartbeats are refused",
        };
        return $"the gateway refused the first heartbeat: {status} {ErrorCode(body)}".TrimEnd() + $"; {hint}";
    }

    /// <summary><c>poll_interval_s</c> and <c>timeout_s</c> of a 200 (the contract's defaults where missing).</summary>
    private static (double Interval, double Timeout) Read(string body)
    {
        double interval = DefaultPollInterval, timeout = DefaultTimeout;
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind == JsonValueKind.Object)
            {
                if (json.RootElement.TryGetProperty("poll_interval_s", out var value) && value.TryGetDouble(out var seconds) && seconds > 0)
                {
                    interval = seconds;
                }

                if (json.RootElement.TryGetProperty("timeout_s", out value) && value.TryGetDouble(out seconds) && seconds > 0)
                {
                    timeout = seconds;
                }
            }
        }
        catch (JsonException)
        {
            // Not the contract's answer: keep its defaults.
        }

        return (interval, timeout);
    }

    /// <summary>The contract's error code and message (<c>RATE_LIMITED: too many requests</c>), or nothing.</summary>
    private static string ErrorCode(string body)
    {
        try
        {
            using var json = JsonDocument.Parse(body);
            if (json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object)
            {
                var code = error.TryGetProperty("code", out var c) ? c.GetString() : null;
                var message = error.TryGetProperty("message", out var m) ? m.GetString() : null;
                return $"{code}{(message is null ? "" : ": " + message)}";
            }
        }
        catch (JsonException)
        {
        }

        return "";
    }
}
