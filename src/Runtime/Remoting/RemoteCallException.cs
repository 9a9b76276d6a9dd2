namespace Presence.Runtime.Remoting;

/// <summary>The silo failed the call with an unexpected error (the gateway answers 500).</summary>
public sealed class RemoteCallException(string message) : Exception(message);
