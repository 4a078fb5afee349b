"""Hash midstates that outlive a process: what a resumable upload needs to go on hashing elsewhere.

hashlib's objects (OpenSSL) are the fastest hashers here and release the GIL, but cannot be pickled.
The `rehash` package that used to pickle them does not support OpenSSL 3, and `rehashes` (Rust) holds
the GIL and takes only `bytes` (measured: MD5 and SHA256 of a stream on two threads run one after the
other, 0.25 s per 128 MiB against 0.155 s with hashlib), so this module reads and writes the midstate
of a hashlib object itself: OpenSSL 3 keeps it in the provider's context (`algctx` of the EVP_MD_CTX),
a fixed-size struct per algorithm (MD5_CTX, SHA_CTX, SHA256_CTX, SHA512_CTX of the default provider).

Nothing is trusted blindly: `supported(name)` first checks that the interpreter and OpenSSL are the
kinds whose layout is known, that the digest the context names is the algorithm asked for, that a fresh
context holds the algorithm's initial values where the struct has them, and that a state carried over
gives the same digest as the original. When any check fails (another OpenSSL, a FIPS provider, another
Python), `supported` answers False and callers do what they did without it (read the bytes again).

    state = export(hasher)                      # bytes, a few hundred at most; None when unsupported
    hasher = restore("sha256", state)           # a hashlib object that goes on from there

Any hashlib algorithm in SIZES can join (SHA-1 and SHA-512 are listed for checksums of the file sent).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import ssl
import struct
import sys
import threading

logger = logging.getLogger("storage.hashstate")

# sizeof the default provider's context struct, and the first word of a fresh one (the IV), per algorithm.
SIZES = {"md5": 92, "sha1": 96, "sha256": 112, "sha512": 216}
_FRESH = {
    "md5": b"\x01\x23\x45\x67\x89\xab\xcd\xef",
    "sha1": b"\x01\x23\x45\x67\x89\xab\xcd\xef",
    "sha256": struct.pack("<II", 0x6A09E667, 0xBB67AE85),
    "sha512": struct.pack("<Q", 0x6A09E667F3BCC908),
}


class _EVP_MD_CTX(ctypes.Structure):  # OpenSSL 3.x crypto/evp/evp_local.h, struct evp_md_ctx_st
    _fields_ = [
        ("reqdigest", ctypes.c_void_p),
        ("digest", ctypes.c_void_p),
        ("engine", ctypes.c_void_p),
        ("flags", ctypes.c_ulong),
        ("md_data", ctypes.c_void_p),
        ("pctx", ctypes.c_void_p),
        ("update", ctypes.c_void_p),
        ("algctx", ctypes.c_void_p),
        ("fetched_digest", ctypes.c_void_p),
    ]


class _HashObject(ctypes.Structure):  # CPython Modules/_hashopenssl.c, EVPobject / HASHobject
    _fields_ = [
        ("ob_refcnt", ctypes.c_ssize_t),
        ("ob_type", ctypes.c_void_p),
        ("ctx", ctypes.POINTER(_EVP_MD_CTX)),
    ]


_checked: dict[str, bool] = {}
_mutex = threading.Lock()
_libcrypto = None


def _new(name: str):
    return hashlib.md5(usedforsecurity=False) if name == "md5" else hashlib.new(name)


def _context(hasher) -> _EVP_MD_CTX:
    return _HashObject.from_address(id(hasher)).ctx.contents


def _crypto():
    global _libcrypto
    if _libcrypto is None:
        import _hashlib

        # The libcrypto hashlib itself uses: symbols are looked up in _hashlib's own dependencies.
        library = ctypes.CDLL(_hashlib.__file__)
        library.EVP_MD_CTX_get0_md.restype = ctypes.c_void_p
        library.EVP_MD_CTX_get0_md.argtypes = [ctypes.c_void_p]
        library.EVP_MD_get_type.restype = ctypes.c_int
        library.EVP_MD_get_type.argtypes = [ctypes.c_void_p]
        library.OBJ_sn2nid.restype = ctypes.c_int
        library.OBJ_sn2nid.argtypes = [ctypes.c_char_p]
        _libcrypto = library
    return _libcrypto


def supported(name: str) -> bool:
    """True when midstates of `name` can be exported and restored in this process (checked once)."""
    with _mutex:
        if name not in _checked:
            try:
                _checked[name] = _check_roundtrip(name)
            except Exception:  # noqa: BLE001 - any surprise means: not here
                logger.warning("hash midstates of %s cannot be kept here", name, exc_info=True)
                _checked[name] = False
        return _checked[name]


def _check_roundtrip(name: str) -> bool:
    if not _check_layout(name):
        return False
    hasher = _new(name)
    sample = bytes(range(256)) * 41 + b"odd"
    hasher.update(sample)
    carried = _restore_unchecked(name, _export_unchecked(hasher))
    carried.update(b"and more")
    hasher.update(b"and more")
    expected = _new(name)
    expected.update(sample + b"and more")
    return carried.hexdigest() == hasher.hexdigest() == expected.hexdigest()


def _check_layout(name: str) -> bool:
    if name not in SIZES:
        return False
    if sys.implementation.name != "cpython" or not ((3, 8) <= sys.version_info[:2] <= (3, 13)):
        return False
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return False  # a free-threaded build lays its objects out otherwise
    if not ssl.OPENSSL_VERSION.startswith("OpenSSL 3."):
        return False
    hasher = _new(name)
    if type(hasher).__module__ != "_hashlib":
        return False
    crypto = _crypto()
    address = ctypes.cast(_HashObject.from_address(id(hasher)).ctx, ctypes.c_void_p).value
    if not address:
        return False
    context = _context(hasher)
    md = crypto.EVP_MD_CTX_get0_md(address)
    short_name = {"md5": b"MD5", "sha1": b"SHA1", "sha256": b"SHA256", "sha512": b"SHA512"}[name]
    if not md or md != context.digest or crypto.EVP_MD_get_type(md) != crypto.OBJ_sn2nid(short_name):
        return False
    return bool(context.algctx) and ctypes.string_at(context.algctx, len(_FRESH[name])) == _FRESH[name]


def _export_unchecked(hasher) -> bytes:
    return ctypes.string_at(_context(hasher).algctx, SIZES[hasher.name])


def _restore_unchecked(name: str, state: bytes):
    hasher = _new(name)
    ctypes.memmove(_context(hasher).algctx, state, SIZES[name])
    return hasher


def export(hasher) -> bytes | None:
    """The midstate of a hashlib object (nobody may update it meanwhile); None where unsupported."""
    name = hasher.name
    if not supported(name):
        return None
    return _export_unchecked(hasher)


def restore(name: str, state: bytes):
    """A hashlib object that continues from an exported midstate; ValueError when it cannot."""
    if not supported(name) or not isinstance(state, bytes) or len(state) != SIZES[name]:
        raise ValueError(f"cannot restore a {name} midstate here")
    return _restore_unchecked(name, state)


def export_all(hashers: dict) -> dict[str, bytes] | None:
    """{name: midstate} for named hashers; None when any of them cannot be exported."""
    states = {}
    for name, hasher in hashers.items():
        state = export(hasher)
        if state is None:
            return None
        states[name] = state
    return states


def restore_all(states: dict[str, bytes]) -> dict:
    return {name: restore(name, state) for name, state in states.items()}
