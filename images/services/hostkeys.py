"""sftp host keys trusted on first use: without IMPORT_SFTP_KNOWN_HOSTS, the first import from a server
records the key it showed, and every later import from that host and port must be shown the same key
before any password or key is sent. Administrators see the keys in Django admin (SFTP host keys) and
remove one when a server's key really changed."""

from __future__ import annotations

import logging
import threading

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..fetch.errors import FetchError
from ..fetch.sftp import fingerprint
from ..models import SftpHostKey

logger = logging.getLogger("images.fetch")


def trust_on_first_use(host: str, port: int, key) -> None:
    """Raise FetchError unless `key` (a paramiko PKey) is the one first seen at host:port.

    Called from the fetch's own thread, whose database connection is closed when the check is done."""
    try:
        _check(host.lower(), port, key)
    finally:
        if threading.current_thread() is not threading.main_thread():
            connection.close()


def _check(host: str, port: int, key) -> None:
    known = list(SftpHostKey.objects.filter(host=host, port=port))
    if not known:
        try:
            with transaction.atomic():
                SftpHostKey.objects.create(
                    host=host,
                    port=port,
                    key_type=key.get_name(),
                    key=key.get_base64(),
                    fingerprint=fingerprint(key),
                    last_used_at=timezone.now(),
                )
        except IntegrityError:
            # Another import recorded this server's key at the same moment: check against it.
            return _check(host, port, key)
        logger.info("sftp host %s:%s trusted on first use: %s", host, port, fingerprint(key))
        return
    for entry in known:
        if entry.key_type == key.get_name() and entry.key == key.get_base64():
            SftpHostKey.objects.filter(pk=entry.pk).update(last_used_at=timezone.now())
            return
    raise FetchError(
        _(
            "The sftp server %(host)s:%(port)s shows a different host key from the one it showed the first "
            "time (%(known)s; now %(fingerprint)s), so the import was stopped before any password or key was "
            "sent. If the server's key really changed, an administrator removes the old one in the "
            "administration (SFTP host keys); the next import then trusts the new key."
        )
        % {
            "host": host,
            "port": port,
            "known": ", ".join(entry.fingerprint for entry in known),
            "fingerprint": fingerprint(key),
        }
    )
