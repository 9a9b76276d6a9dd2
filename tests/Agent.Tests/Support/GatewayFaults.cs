using System.Net;
using System.Text;

namespace Presence.Agent.Tests.Support;

/// <summary>
/// The agent's HTTP handler in tests: passes requests to the real gateway over loopback, records each one (path and
/// answer), and can play a gateway that is down or answers with a given status for the next requests to a path.
/// </summary>
public sealed class GatewayFaults() : DelegatingHandler(new SocketsHttpHandler())
{
    private readonly Lock _lock = new();
    private readonly List<(string Path, int Status)> _requests = [];
    private readonly Queue<(string Path, HttpStatusCode Status, int? RetryAfter)> _answers = new();

    /// <summary>While true every request fails as if the gateway's port were closed.</summary>
    public bool Down { get; set; }

    /// <summary>Requests so far as (path, status); status 0 when the request failed.</summary>
    public IReadOnlyList<(string Path, int Status)> Requests
    {
        get
        {
            lock (_lock)
            {
                return [.. _requests];
            }
        }
    }

    public int CountOf(string path, int? status = null) => Requests.Count(r => r.Path == path && (status is null || r.Status == status));

    /// <summary>The next request to <paramref name="path"/> gets <paramref name="status"/> (with an error body as the gateway writes it) instead of reaching the gateway.</summary>
    public void AnswerNext(string path, HttpStatusCode status, int? retryAfter = null)
    {
        lock (_lock)
        {
            _answers.Enqueue((path, status, retryAfter));
        }
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var path = request.RequestUri!.AbsolutePath;
        (string Path, HttpStatusCode Status, int? RetryAfter)? canned = null;
        lock (_lock)
        {
            if (_answers.TryPeek(out var next) && next.Path == path)
            {
                canned = _answers.Dequeue();
            }
        }

        if (Down)
        {
            Record(path, 0);
            throw new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (the test's gateway is down)");
        }

        if (canned is { } answer)
        {
            Record(path, (int)answer.Status);
            var response = new HttpResponseMessage(answer.Status)
            {
                RequestMessage = request,
                Content = new StringContent($$$"""{"error":{"code":"{{{answer.Status}}}","message":"played by the test"}}""", Encoding.UTF8, "application/json"),
            };
            if (answer.RetryAfter is { } seconds)
            {
                response.Headers.RetryAfter = new System.Net.Http.Headers.RetryConditionHeaderValue(TimeSpan.FromSeconds(seconds));
            }

            return response;
        }

        try
        {
            var response = await base.SendAsync(request, cancellationToken);
            Record(path, (int)response.StatusCode);
            return response;
        }
        catch (HttpRequestException)
        {
            Record(path, 0);
            throw;
        }
    }

    private void Record(string path, int status)
    {
        lock (_lock)
        {
            _requests.Add((path, status));
        }
    }
}
