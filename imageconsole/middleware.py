import base64
import functools
import hashlib
import re
from pathlib import Path

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


@functools.cache
def _admin_inline_hashes() -> tuple[list[str], list[str]]:
    """CSP hashes of the inline scripts, style elements and style attributes of django-rq's admin pages (its queues and
    jobs), read from its templates, so the admin keeps a strict policy without rewriting them."""
    import django_rq

    scripts, styles = set(), set()
    for template in (Path(django_rq.__file__).parent / "templates").rglob("*.html"):
        text = template.read_text()
        for match in re.finditer(r"<script[^>]*>(.*?)</script>", text, re.S):
            if match.group(1).strip():
                scripts.add(match.group(1))
        styles.update(re.findall(r"<style[^>]*>(.*?)</style>", text, re.S))
        styles.update(re.findall(r'style="([^"{}]*)"', text))

    def digest(text):
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    return sorted(map(digest, scripts)), sorted(map(digest, styles))


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set: a content security policy and a permissions policy.

    The console allows nothing inline and no other origin. The admin (with django-rq's pages under
    /admin/rq/) gets the same policy plus the hashes of django-rq's few inline scripts and styles.
    """

    CSP = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    )

    def __init__(self, get_response):
        self.get_response = get_response

    @classmethod
    def admin_csp(cls) -> str:
        scripts, styles = _admin_inline_hashes()
        return (
            cls.CSP.replace("script-src 'self'", " ".join(["script-src 'self'", *scripts])).replace(
                "style-src 'self'", " ".join(["style-src 'self'", "'unsafe-hashes'", *styles])
            )
        )

    def __call__(self, request):
        response = self.get_response(request)
        policy = self.admin_csp() if request.path.startswith("/admin/") else self.CSP
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response
