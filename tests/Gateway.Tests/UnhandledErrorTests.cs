using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Presence.Gateway.Tests;

/// <summary>A gateway with a route that fails like a bug would, behind the application's own error handling.</summary>
public sealed class FaultyServer : PresenceServer
{
    public const string SecretDetail = "SELECT password FROM secrets";

    public LogCapture Logs { get; } = new();

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        base.ConfigureWebHost(builder);
        builder.ConfigureTestServices(services =>
        {
            services.AddSingleton<ILoggerProvider>(Logs);
            services.AddSingleton<IStartupFilter, FailingRoute>();
        });
    }

    private sealed class FailingRoute : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            next(app);
            app.Use((HttpContext context, RequestDelegate rest) =>
                context.Request.Path == "/test/bug" ? throw new InvalidOperationException(SecretDetail) : rest(context));
        };
    }
}

public sealed class LogCapture : ILoggerProvider
{
    public ConcurrentQueue<string> Lines { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose()
    {
    }

    private sealed class Logger(LogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Lines.Enqueue($"{logLevel} {formatter(state, exception)} {exception?.GetType().Name}");
    }
}

public sealed class UnhandledErrorTests(FaultyServer server) : IClassFixture<FaultyServer>
{
    [Fact]
    public async Task A_bug_is_a_500_in_the_one_shape_with_a_correlation_id_that_is_logged_and_no_internals()
    {
        using var response = await server.Http.GetAsync("/test/bug");
        var text = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        var error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("INTERNAL", error.GetProperty("code").GetString());
        Assert.DoesNotContain("SELECT", text, StringComparison.Ordinal);
        Assert.DoesNotContain("InvalidOperationException", text, StringComparison.Ordinal);
        var correlationId = error.GetProperty("details")[0].GetProperty("correlation_id").GetString();
        Assert.False(string.IsNullOrWhiteSpace(correlationId));
        Assert.Contains(server.Logs.Lines, line => line.StartsWith("Error", StringComparison.Ordinal)
            && line.Contains(correlationId!, StringComparison.Ordinal) && line.EndsWith("InvalidOperationException", StringComparison.Ordinal));

        using var after = await server.HeartbeatAsync("after-bug");
        Assert.Equal(HttpStatusCode.OK, after.StatusCode);
    }
}
