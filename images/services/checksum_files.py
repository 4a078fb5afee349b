"""A checksum file URL (SHA256SUMS, SHA512SUMS, CHECKSUM) and its optional detached signature, resolved at
submit time into the expected checksum of an import (images.checksums).

Both are fetched through images.fetch, the URL import's guarded fetch layer (allowed networks and ports,
no redirects to refused addresses, size-capped), into memory: they are small.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from ..checksums import CHECKSUM_FILE_MAX, SIGNATURE_MAX, ChecksumError, entry_for, parse_checksum_file

SMALL_FILE_RETRIES = 1
SMALL_FILE_STALL_SECONDS = 20.0


@dataclass(frozen=True)
class Resolved:
    algorithm: str
    value: str
    source: str  # Image.ChecksumSource: "file" or "signed"
    file_url: str  # redacted
    signature_url: str
    signer: str


class _Memory:
    """A fetch sink that keeps what it receives (a resettable one: the fetch may start again)."""

    def __init__(self):
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    def reset(self) -> None:
        self.data.clear()


def _small_file_policy(policy):
    """The fetch runs inside the submitting request: one retry at most, and a shorter stall timeout."""
    import dataclasses

    return dataclasses.replace(
        policy,
        retries=min(policy.retries, SMALL_FILE_RETRIES),
        stall_timeout=min(policy.stall_timeout, SMALL_FILE_STALL_SECONDS),
    )


def fetch_small(url: str, *, max_bytes: int, allow_file: bool = False) -> bytes:
    """The whole of a small file at `url`, through the import's fetch layer; ChecksumError if it fails."""
    from ..fetch import FetchError, FetchPolicy, TooLarge, fetch, split_secret
    from .hostkeys import trust_on_first_use

    redacted, secret = split_secret(url)
    sink = _Memory()
    try:
        fetch(
            redacted,
            secret=secret,
            sink=sink,
            max_bytes=max_bytes,
            allow_file=allow_file,
            policy=_small_file_policy(FetchPolicy.from_settings(sftp_host_key_check=trust_on_first_use)),
        )
    except TooLarge as error:
        raise ChecksumError(
            _("%(url)s is larger than a checksum file or signature can be.") % {"url": redacted},
            code="checksum_file_large",
        ) from error
    except FetchError as error:
        raise ChecksumError(
            _("The checksum file could not be fetched: %(error)s") % {"error": error}, code="checksum_fetch"
        ) from error
    return bytes(sink.data)


def resolve_checksum_file(
    url: str, *, name: str, signature_url: str = "", allow_file: bool = False
) -> Resolved:
    """The entry for file `name` in the checksum file at `url`, its signature verified first if given.

    Raises ChecksumError with a message for the form's field (no entry, bad signature, not fetched).
    """
    from ..fetch import split_secret

    redacted, _secret = split_secret(url)
    data = fetch_small(url, max_bytes=CHECKSUM_FILE_MAX, allow_file=allow_file)
    signer = ""
    if signature_url:
        from ..signatures import verify_detached

        signature = fetch_small(signature_url, max_bytes=SIGNATURE_MAX, allow_file=allow_file)
        signer = verify_detached(data, signature)
    text = data.decode("utf-8", errors="replace")
    entry = entry_for(parse_checksum_file(text), name, url=redacted)
    return Resolved(
        algorithm=entry.algorithm,
        value=entry.value,
        source="signed" if signature_url else "file",
        file_url=redacted,
        signature_url=split_secret(signature_url)[0] if signature_url else "",
        signer=signer,
    )
