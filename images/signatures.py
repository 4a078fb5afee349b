"""Detached OpenPGP signatures of checksum files (SHA256SUMS.gpg, CHECKSUM.sig), verified against the keys
administrators trust (`TrustedSigningKey`, added in Django admin).

python-gnupg drives the system's gpg in a temporary home that holds only the enabled trusted keys, so
nothing else on the machine (a user's keyring, its trust settings) takes part, and the home is removed
after each check. A signature is good when gpg reports VALIDSIG by one of those keys' fingerprints
(a subkey's signature counts for its primary key); an expired or revoked key is refused.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.utils.translation import gettext as _

from .checksums import ChecksumError


def _gpg(home: str):
    import gnupg

    if shutil.which("gpg") is None:
        raise ChecksumError(
            _(
                "gpg is not installed on the server, so signatures cannot be verified (apt-get install gnupg)."
            ),
            code="gpg_missing",
        )
    return gnupg.GPG(gnupghome=home)


def key_fingerprints(armored: str) -> list[str]:
    """The primary fingerprints in an ASCII-armoured public key block ([] when it holds none)."""
    home = tempfile.mkdtemp(prefix="imageconsole-gpg-")
    try:
        result = _gpg(home).import_keys(armored)
        return [fingerprint.upper() for fingerprint in (result.fingerprints or [])]
    finally:
        shutil.rmtree(home, ignore_errors=True)


def verify_detached(data: bytes, signature: bytes) -> str:
    """Verify `signature` (binary or armoured) of `data` against the enabled trusted keys.

    Returns the signer ("name (fingerprint)"); raises ChecksumError saying why not.
    """
    from .models import TrustedSigningKey

    keys = list(TrustedSigningKey.objects.filter(enabled=True))
    if not keys:
        raise ChecksumError(
            _("No signing key is trusted yet: an administrator adds the publisher's key first."),
            code="signature_no_keys",
        )
    home = tempfile.mkdtemp(prefix="imageconsole-gpg-")
    try:
        gpg = _gpg(home)
        owners = {}
        for key in keys:
            for fingerprint in gpg.import_keys(key.armored_key).fingerprints or []:
                owners[fingerprint.upper()] = key
        signature_path = Path(home) / "checksums.sig"
        signature_path.write_bytes(signature)
        verified = gpg.verify_data(str(signature_path), data)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    primary = (getattr(verified, "pubkey_fingerprint", None) or verified.fingerprint or "").upper()
    if verified.valid and primary in owners:
        owner = owners[primary]
        return f"{owner.name} ({primary})"
    if verified.status == "no public key" or (verified.valid and primary not in owners):
        raise ChecksumError(
            _(
                "The checksum file is signed by key %(key)s, which is not among the trusted signing keys; "
                "an administrator adds it if it is the publisher's."
            )
            % {"key": verified.key_id or "?"},
            code="signature_untrusted",
        )
    raise ChecksumError(
        _(
            "The signature of the checksum file does not verify (%(status)s): the file was changed or is not the one signed."
        )
        % {"status": verified.status or _("no valid signature")},
        code="signature_bad",
    )
