from tenants.selectors import resolve_current_tenant


class CurrentTenantMiddleware:
    """Put the tenant the user works in on the request as `request.tenant` and `request.membership`.

    The tenant comes from the session (the tenant switcher writes it); a user who may no longer see it
    falls back to the first tenant they may see. Views and selectors read only these two attributes.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant, request.membership = resolve_current_tenant(request)
        return self.get_response(request)


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set: a content security policy and a permissions policy."""

    CSP = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", self.CSP)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response
