# The Presence device agent as a container image (docs/agent.md, "Docker").
#
#   docker build -f deploy/agent.Dockerfile -t presence-agent .
#   docker run -d --name presence-agent --restart unless-stopped \
#     --hostname "$(hostname)" \
#     -v /proc:/host/proc:ro -e PRESENCE_PROC_ROOT=/host/proc \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -e PRESENCE_DEVICE_SECRET \
#     presence-agent --server https://presence.example.com --device-id "$(hostname)"
#
# The host's /proc, read-only, gives the host's metrics; the Docker socket its containers (read-only listing:
# GET /containers/json). The agent runs as the image's non-root user, so it needs the socket's group to read it.
# --hostname makes the default device id and name the host's rather than the container's id. `docker stop` sends
# SIGTERM: the agent closes its channel and exits with code 0.

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props .editorconfig ./
COPY src/Agent/Agent.csproj src/Agent/
RUN dotnet restore src/Agent/Agent.csproj
COPY src/Agent/ src/Agent/
RUN dotnet publish src/Agent/Agent.csproj --configuration Release --no-restore --output /app

FROM mcr.microsoft.com/dotnet/runtime:10.0 AS final
WORKDIR /app
COPY --from=build /app ./
# The .NET images' non-root user (uid 1654, "app").
USER $APP_UID
ENTRYPOINT ["dotnet", "Presence.Agent.dll"]
