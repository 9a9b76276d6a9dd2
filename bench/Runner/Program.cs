using Presence.Runner;

return await BenchCommand.RunAsync(args);
