using Presence.BareKestrel;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
builder.Logging.SetMinimumLevel(LogLevel.Warning);

var app = builder.Build();
app.MapPost("/api/v1/heartbeat", BaselineHeartbeat.HandleAsync);
app.MapGet("/healthz", () => Results.Text("ok"));
app.Run();
