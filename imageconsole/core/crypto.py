"""Secrets kept at rest (storage credentials, passwords in import URLs), encrypted with Fernet.

The key is FIELD_ENCRYPTION_KEY when set, else derived from SECRET_KEY.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet() -> Fernet:
    material = settings.FIELD_ENCRYPTION_KEY or settings.SECRET_KEY
    key = base64.urlsafe_b64encode(hashlib.sha256(("imageconsole-fields:" + material).encode()).digest())
    return Fernet(key)


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext, or "" when there is none; raises ValueError when the key has changed."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise ValueError(
            "stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY or SECRET_KEY changed"
        ) from error
