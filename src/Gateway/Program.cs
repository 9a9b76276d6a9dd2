using Presence.Gateway.Hosting;
using Presence.Runtime.Hosting;

// Settings files are found next to the program wherever it is started from.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.AddPresenceGateway();
builder.AddPresenceTelemetry();
builder.AddPresenceGrains();

var app = builder.Build();
app.MapPresenceApi();
return app.RunPresence();
