using Presence.Gateway.Hosting;
using Presence.Runtime.Silo;

var builder = WebApplication.CreateBuilder(args);
builder.AddPresenceGateway();
builder.AddPresenceTelemetry();
builder.Services.AddEmbeddedSilo();

var app = builder.Build();
app.MapPresenceApi();
return app.RunPresence();
