"""Fetching an image file from a URL: http, https, ftp, sftp and file://, resumable, cancellable, guarded.

    redacted_url, secret = split_secret(url_as_typed)    # store these two; never the URL as typed
    validate(redacted_url, allow_file=user.is_staff)     # the form's and the API's check (no DNS)
    fetch(redacted_url, secret=secret, sink=writer, progress=..., should_cancel=..., check_length=...)

`fetch` streams the file into `sink` in constant memory, resumes after a dropped connection, restarts
from zero once when the server cannot resume (the sink must then be resettable: see `engine.Sink`),
and raises a `FetchError` whose message a person can act on. Every callback runs in the caller's thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from imageconsole.core import crypto
from imageconsole.core.words import gettext as _

from . import engine, guard, local, urls
from .engine import FetchProgress, FetchResult, Sink
from .errors import FetchCancelled, FetchError, TooLarge, URLRefused
from .policy import FetchPolicy
from .urls import REDACTED, ImportURL, redact, split_secret

__all__ = [
    "FetchCancelled",
    "FetchError",
    "FetchPolicy",
    "FetchProgress",
    "FetchResult",
    "ImportURL",
    "REDACTED",
    "Sink",
    "TooLarge",
    "URLRefused",
    "fetch",
    "fetch_storage_file",
    "redact",
    "split_secret",
    "validate",
]

logger = logging.getLogger("images.fetch")


def validate(url: str, *, allow_file: bool = False, policy: FetchPolicy | None = None) -> ImportURL:
    """Every check that needs no network: syntax, scheme, port, an address written in the URL, file rules.

    Raises URLRefused (its message says which rule refused); the fetch repeats these checks and adds
    the ones on resolved addresses and redirects.
    """
    policy = policy or FetchPolicy.from_settings()
    parsed, _password = urls.parse(url)
    guard.check_url(parsed, policy)
    if parsed.scheme == "file":
        local.check_file_url(parsed, allow_file=allow_file, roots=policy.file_roots)
    elif parsed.scheme == "sftp" and not parsed.has_password and not policy.sftp_key_file:
        from .sftp import load_key

        load_key(policy)  # raises URLRefused: no key configured
    return parsed


def fetch(
    url: str,
    *,
    sink,
    secret: str = "",
    progress: Callable[[FetchProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    check_length: Callable[[int], None] | None = None,
    max_bytes: int | None = None,
    allow_file: bool = False,
    policy: FetchPolicy | None = None,
) -> FetchResult:
    """Fetch `url` into `sink`.

    url: the redacted URL from `split_secret` (a URL with its password in clear works too: the password
        is encrypted at once and kept so).
    secret: the password as `split_secret` returned it (encrypted); decrypted only when logging in.
    sink: see `engine.Sink`: an object with write(bytes) and reset(), a seekable file, or a callable.
    progress: called with a FetchProgress at most once a second.
    should_cancel: asked about twice a second; True stops the transfer and raises FetchCancelled.
    check_length: called with the length the server announces (Content-Length, FTP SIZE, sftp stat)
        before the transfer; it raises (quota, free space) to refuse the file.
    max_bytes: the transfer is cut off with TooLarge when the file passes this.
    allow_file: the user may import from file:// (a platform administrator).
    """
    policy = policy or FetchPolicy.from_settings()
    parsed, password = urls.parse(url)
    if password == REDACTED:
        if not secret:
            raise FetchError(
                _("The password of %(url)s is no longer kept; enter the URL with its password again.")
                % {"url": parsed.redacted}
            )
    elif password is not None:
        secret = crypto.encrypt(password)
    del password

    def reveal_password() -> str:
        return crypto.decrypt(secret)

    validate(parsed.redacted, allow_file=allow_file, policy=policy)
    if parsed.scheme in ("http", "https"):
        from .http import HttpDriver

        driver = HttpDriver(parsed, password=reveal_password, policy=policy)
    elif parsed.scheme == "ftp":
        from .ftp import FtpDriver

        driver = FtpDriver(parsed, password=reveal_password, policy=policy)
    elif parsed.scheme == "sftp":
        from .sftp import SftpDriver

        driver = SftpDriver(parsed, password=reveal_password, policy=policy)
    else:
        path = local.check_file_url(parsed, allow_file=allow_file, roots=policy.file_roots)
        driver = local.LocalDriver(parsed, path=path)

    logger.info("fetching %s", parsed.redacted)
    return engine.run(
        driver=driver,
        url=parsed.redacted,
        sink=sink,
        progress=progress,
        should_cancel=should_cancel,
        check_length=check_length,
        max_bytes=max_bytes,
        retries=policy.retries,
        retry_delay=policy.retry_delay,
    )


def fetch_storage_file(
    backend,
    path: str,
    *,
    label: str,
    sink,
    progress: Callable[[FetchProgress], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    check_length: Callable[[int], None] | None = None,
    max_bytes: int | None = None,
    policy: FetchPolicy | None = None,
) -> FetchResult:
    """Fetch a file under a storage server's mount path into `sink`, over the storage's own connection
    (`backend`: its ServerBackend). `label` names the file in messages. Same resuming, cancelling and
    limits as `fetch`."""
    from .storagefile import StorageFileDriver

    policy = policy or FetchPolicy.from_settings()
    logger.info("fetching %s from its storage server", label)
    return engine.run(
        driver=StorageFileDriver(backend, path, label=label),
        url=label,
        sink=sink,
        progress=progress,
        should_cancel=should_cancel,
        check_length=check_length,
        max_bytes=max_bytes,
        retries=policy.retries,
        retry_delay=policy.retry_delay,
    )
