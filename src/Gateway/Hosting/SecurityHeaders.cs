namespace Presence.Gateway.Hosting;

/// <summary>
/// Headers on every gateway response: API responses are never sniffed, framed, cached or sent as a referrer, and
/// nothing may load resources from them. HSTS is added only on HTTPS (behind TLS termination, the proxy sets it).
/// </summary>
internal static class SecurityHeaders
{
    /// <summary>Set as the response starts, so that error handling that clears the response keeps them.</summary>
    public static IApplicationBuilder UseSecurityHeaders(this IApplicationBuilder app) => app.Use((context, next) =>
    {
        context.Response.OnStarting(static state => Apply((HttpContext)state), context);
        return next(context);
    });

    private static Task Apply(HttpContext context)
    {
        var headers = context.Response.Headers;
        headers.XContentTypeOptions = "nosniff";
        headers.XFrameOptions = "DENY";
        headers.ContentSecurityPolicy = "default-src 'none'; frame-ancestors 'none'";
        headers["Referrer-Policy"] = "no-referrer";
        headers["Cross-Origin-Resource-Policy"] = "same-origin";
        headers.CacheControl = "no-store";
        if (context.Request.IsHttps)
        {
            headers.StrictTransportSecurity = "max-age=31536000";
        }

        return Task.CompletedTask;
    }
}
