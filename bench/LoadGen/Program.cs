using Presence.LoadGen;

LoadOptions options;
try
{
    options = LoadOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or UriFormatException)
{
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine(LoadOptions.Usage);
    return 2;
}

using var cancel = new CancellationTokenSource();
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cancel.Cancel();
};

var report = await new LoadEngine(options).RunAsync(cancel.Token);
Console.WriteLine(report.ToHumanLine());
Console.WriteLine(report.ToJson());
return report.Requests > 0 ? 0 : 1;
