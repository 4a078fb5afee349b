"""Identity tokens: issued on a password login, revoked on request. Every other change goes through the
images app's services."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from tenants.services import log

from .models import IdentityToken


def token_lifetime() -> timedelta:
    return timedelta(seconds=settings.OPENSTACK_TOKEN_SECONDS)


@transaction.atomic
def identity_token_issue(*, user, tenant, request=None) -> tuple[str, IdentityToken]:
    """A new token for `user` in `tenant`; returns the key (shown once) and the stored row."""
    key = IdentityToken.generate_key()
    token = IdentityToken.objects.create(
        user=user,
        tenant=tenant,
        key_hash=IdentityToken.hash_key(key),
        audit_id=secrets.token_urlsafe(16)[:22],
        expires_at=timezone.now() + token_lifetime(),
    )
    log(action="openstack.token.issue", tenant=tenant, actor=user, target=token, request=request)
    return key, token


@transaction.atomic
def identity_token_revoke(*, token: IdentityToken, actor=None, request=None) -> None:
    updated = IdentityToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=timezone.now())
    if updated:
        log(
            action="openstack.token.revoke",
            tenant=token.tenant,
            actor=actor or token.user,
            target=token,
            request=request,
        )


def identity_tokens_revoke(*, queryset) -> int:
    return queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
