import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from imageconsole.core.models import BaseModel


class IdentityToken(BaseModel):
    """A token issued by the Identity v3 endpoint (`POST /openstack/identity/v3/auth/tokens`).

    Only the SHA256 of the token is stored; the token itself travels once, in `X-Subject-Token`. It is
    scoped to one tenant (the OpenStack project) and refused once expired, revoked, or when its user is
    inactive or no longer a member of the tenant.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    key_hash = models.CharField(max_length=64, unique=True)
    audit_id = models.CharField(max_length=32)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("identity token")
        verbose_name_plural = _("identity tokens")

    def __str__(self):
        return f"{self.audit_id} ({self.user} @ {self.tenant})"

    @staticmethod
    def hash_key(key: str) -> str:
        return hashlib.sha256(key.encode()).hexdigest()

    @staticmethod
    def generate_key() -> str:
        # Prefixed so it can never collide with a console API key (those are checked second).
        return "ic-" + secrets.token_urlsafe(32)
