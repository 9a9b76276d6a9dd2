using Presence.Runtime.Storage;

namespace Presence.Runtime.Remoting;

/// <summary>
/// The silo could not be reached, or the connection was lost before the reply (the call may or may not have been
/// applied).
/// </summary>
public sealed class SiloUnreachableException(string message, Exception? inner = null) : UnavailableException(message, inner);
