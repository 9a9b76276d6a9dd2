using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.Extensions.Logging;

namespace Presence.Gateway.Tests;

/// <summary>
/// Invalid configuration stops start-up with a message that names the key (API.md, Configuration). Each case starts
/// the real Program on the in-memory test server: nothing listens, so even a non-loopback <c>urls</c> binds nothing.
/// The message is looked for where an operator would see it: the start-up exception or the start-up log.
/// </summary>
public sealed class ConfigurationTests
{
    public static TheoryData<string, string, string> InvalidSettings => new()
    {
        { "Presence:Heartbeat:TimeoutSeconds", "-1", "Presence:Heartbeat:TimeoutSeconds" },
        { "Presence:Heartbeat:TimeoutSeconds", "0", "Presence:Heartbeat:TimeoutSeconds" },
        { "Presence:Heartbeat:TimeoutSeconds", "abc", "Presence:Heartbeat:TimeoutSeconds" },
        { "Presence:Heartbeat:TimeoutSeconds", "NaN", "Presence:Heartbeat:TimeoutSeconds" },
        { "Presence:Heartbeat:IntervalSeconds", "-5", "Presence:Heartbeat:IntervalSeconds" },
        { "Presence:Heartbeat:DisconnectGraceSeconds", "x", "Presence:Heartbeat:DisconnectGraceSeconds" },
        { "Presence:Storage:Provider", "oracle", "Presence:Storage:Provider" },
        { "Presence:Storage:FlushIntervalSeconds", "0", "Presence:Storage:FlushIntervalSeconds" },
        { "Presence:Auth:Mode", "bogus", "Presence:Auth:Mode" },
        { "Presence:RateLimit:HeartbeatsPerMinute", "0", "Presence:RateLimit:HeartbeatsPerMinute" },
        { "Presence:RateLimit:HeartbeatsPerMinute", "many", "Presence:RateLimit:HeartbeatsPerMinute" },
        { "Presence:Events:Retention", "-1", "Presence:Events:Retention" },
        { "Presence:Cluster:Mode", "mesh", "Presence:Cluster:Mode" },
        { "Presence:Cluster:Partitions", "0", "Presence:Cluster:Partitions" },
    };

    [Theory]
    [MemberData(nameof(InvalidSettings))]
    public void Invalid_setting_stops_start_up_with_a_message_naming_the_key(string key, string value, string named)
    {
        using var gateway = new ConfiguredGateway(new() { [key] = value });

        var failure = Record.Exception(() => gateway.CreateClient());

        AssertNamesKey(failure, gateway.Log, named);
    }

    [Theory]
    [InlineData("http://0.0.0.0:0")]
    [InlineData("http://[::]:0")]
    [InlineData("http://*:0")]
    [InlineData("http://+:0")]
    [InlineData("http://example.com:8080")]
    [InlineData("http://127.0.0.1:0;http://10.1.2.3:0")]
    public void Auth_mode_none_refuses_a_non_loopback_address_without_allow_insecure(string urls)
    {
        using var gateway = new ConfiguredGateway(new() { ["urls"] = urls });

        var failure = Record.Exception(() => gateway.CreateClient());

        AssertNamesKey(failure, gateway.Log, "Presence:Auth:AllowInsecure");
    }

    [Theory]
    [InlineData("http://0.0.0.0:0", "true")]
    [InlineData("http://127.0.0.1:0", "false")]
    [InlineData("http://localhost:0;http://[::1]:0", "false")]
    public async Task Loopback_addresses_or_allow_insecure_start_in_auth_mode_none(string urls, string allowInsecure)
    {
        using var gateway = new ConfiguredGateway(new() { ["urls"] = urls, ["Presence:Auth:AllowInsecure"] = allowInsecure });

        using var client = gateway.CreateClient();
        using var health = await client.GetAsync("/healthz");

        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task Decimal_timeouts_are_valid_and_reported_in_whole_seconds()
    {
        using var gateway = new ConfiguredGateway(new()
        {
            ["Presence:Heartbeat:TimeoutSeconds"] = "1.5",
            ["Presence:Heartbeat:IntervalSeconds"] = "0.5",
        });

        using var client = gateway.CreateClient();
        using var response = await client.PostAsync("/api/v1/heartbeat", ErrorShape.Json("{\"device_id\":\"cfg-1\"}"));
        var body = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(2, body.GetProperty("timeout_s").GetInt32());
        Assert.Equal(1, body.GetProperty("poll_interval_s").GetInt32());
    }

    [Theory]
    [InlineData("--Presence:Heartbeat:TimeoutSeconds=-1", "Presence:Heartbeat:TimeoutSeconds")]
    [InlineData("--Presence:Auth:Mode=bogus", "Presence:Auth:Mode")]
    public async Task Gateway_process_with_invalid_configuration_exits_with_the_key_named_and_no_stack_trace(string argument, string key)
    {
        var gateway = typeof(Program).Assembly.Location;
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            WorkingDirectory = Path.GetDirectoryName(gateway)!,
        };
        foreach (var arg in new[] { gateway, "--urls", "http://127.0.0.1:0", argument })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var output = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var errors = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"the gateway did not stop with {argument}");
        }

        var text = await output + await errors;
        Assert.NotEqual(0, process.ExitCode);
        Assert.Contains(key, text, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", text, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", text, StringComparison.Ordinal);
    }

    private static void AssertNamesKey(Exception? failure, IEnumerable<string> log, string key)
    {
        Assert.NotNull(failure);
        var messages = Chain(failure).Select(e => e.Message).Concat(log).ToList();
        Assert.True(
            messages.Any(m => m.Contains(key, StringComparison.Ordinal)),
            $"neither the start-up exception nor the log names '{key}':{Environment.NewLine}{string.Join(Environment.NewLine, messages.Select(m => $"  {m}"))}");
    }

    private static IEnumerable<Exception> Chain(Exception error)
    {
        yield return error;
        var inner = error is AggregateException aggregate ? aggregate.InnerExceptions : error.InnerException is { } one ? [one] : [];
        foreach (var e in inner)
        {
            foreach (var nested in Chain(e))
            {
                yield return nested;
            }
        }
    }

    /// <summary>The real gateway on the in-memory test server with the given settings (including <c>urls</c>), its log captured.</summary>
    private sealed class ConfiguredGateway(Dictionary<string, string> settings) : WebApplicationFactory<Program>
    {
        private readonly CapturedLog _log = new();

        public IEnumerable<string> Log => _log.Entries;

        protected override void ConfigureWebHost(IWebHostBuilder builder)
        {
            foreach (var (key, value) in settings)
            {
                builder.UseSetting(key, value);
            }

            builder.ConfigureLogging(logging => logging.AddProvider(_log));
        }
    }

    /// <summary>Keeps every warning and above with its exception messages.</summary>
    private sealed class CapturedLog : ILoggerProvider, ILogger
    {
        private readonly ConcurrentQueue<string> _entries = new();

        public IEnumerable<string> Entries => _entries;

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            _entries.Enqueue(formatter(state, exception));
            if (exception is not null)
            {
                foreach (var e in Chain(exception))
                {
                    _entries.Enqueue(e.Message);
                }
            }
        }

        public void Dispose()
        {
        }
    }
}
