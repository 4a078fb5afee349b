"""Published checksums: the expected checksum of an import, the checksum files distributions publish
(SHA256SUMS, SHA512SUMS, CHECKSUM) and their detached OpenPGP signatures.

An import may carry an expected checksum: its algorithm (MD5, SHA-1, SHA-256, SHA-512), its value, and
which bytes it covers (`Image.checksum_of`): `sent`, the file as it was uploaded or downloaded (compressed,
if it was: what a distribution's SHA256SUMS lists for `Fedora-Cloud.raw.xz`), or `image`, the image after
decompression. For a file that is not compressed both are the same bytes.

The hashes are computed while the bytes pass (never a second read): the image's MD5 and SHA256 are computed
anyway; another algorithm is one more hasher beside them (`extra_hasher`). The bytes as sent of a compressed
file are hashed where they enter the decompressor (images.decompress).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from django.utils.translation import gettext as _

ALGORITHMS = {"md5": 32, "sha1": 40, "sha256": 64, "sha512": 128}
LABELS = {"md5": "MD5", "sha1": "SHA-1", "sha256": "SHA-256", "sha512": "SHA-512"}
HEX_RE = re.compile(r"^[0-9a-f]+$")
# A checksum file is small; a larger answer is not one.
CHECKSUM_FILE_MAX = 1 << 20
SIGNATURE_MAX = 64 << 10


class ChecksumError(Exception):
    """A checksum cannot be used or does not match; the message says why."""

    def __init__(self, message: str, *, code: str = "checksum"):
        super().__init__(message)
        self.message = message
        self.code = code


def new_hasher(algorithm: str):
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "sha1":
        return hashlib.sha1(usedforsecurity=False)
    return hashlib.new(algorithm)


def algorithm_for_length(value: str) -> str | None:
    """The algorithm whose hex digests have the length of `value` (MD5 32 ... SHA-512 128)."""
    for algorithm, length in ALGORITHMS.items():
        if len(value) == length:
            return algorithm
    return None


def clean_value(value: str, algorithm: str) -> str:
    """A checksum as lowercase hex of the algorithm's length; ChecksumError otherwise."""
    value = (value or "").strip().lower()
    length = ALGORITHMS[algorithm]
    if len(value) != length or not HEX_RE.match(value):
        raise ChecksumError(
            _("A %(algorithm)s checksum is %(length)d hexadecimal characters (0-9, a-f); this one is not.")
            % {"algorithm": LABELS[algorithm], "length": length},
            code="checksum_format",
        )
    return value


@dataclass(frozen=True)
class Expected:
    """What an import is verified against (from the Image's checksum fields)."""

    algorithm: str
    value: str
    of: str  # "sent" or "image"

    @classmethod
    def of_image(cls, image) -> Expected | None:
        if image.checksum_expected and image.checksum_algorithm:
            return cls(image.checksum_algorithm, image.checksum_expected.lower(), image.checksum_of or "sent")
        if image.expected_sha256:  # before the checksum fields: a SHA256 of the (decompressed) image
            return cls("sha256", image.expected_sha256.lower(), "image")
        return None

    def check(self, actual: str) -> None:
        if actual.lower() != self.value:
            raise ChecksumError(mismatch_message(self, actual), code="checksum")


def mismatch_message(expected: Expected, actual: str) -> str:
    what = (
        _("the decompressed image")
        if expected.of == "image"
        else _("the file as sent (compressed, if it was)")
    )
    return _(
        "Checksum mismatch: the %(algorithm)s of %(what)s is %(actual)s, but %(expected)s was expected. The "
        "file was damaged on its way or is not the one meant. Check the file and import it again."
    ) % {"algorithm": LABELS[expected.algorithm], "what": what, "actual": actual, "expected": expected.value}


def extra_hasher(expected: Expected | None, *, have: tuple[str, ...]):
    """A hasher for the expected checksum's algorithm, unless it is among `have` (computed anyway)."""
    if expected is None or expected.algorithm in have:
        return None
    return new_hasher(expected.algorithm)


# --- checksum files ---------------------------------------------------------------------------------

# GNU coreutils: `<hex>  name` (text mode) or `<hex> *name` (binary mode); a leading backslash escapes
# a name with a newline or backslash in it.
GNU_LINE = re.compile(r"^\\?(?P<hash>[0-9a-fA-F]{32,128}) (?P<mode>[ *])(?P<name>.+)$")
# BSD and `sha256sum --tag`: `SHA256 (name) = <hex>`; Fedora's CHECKSUM files use this form.
BSD_LINE = re.compile(
    r"^(?P<algo>MD5|SHA1|SHA-1|SHA256|SHA-256|SHA512|SHA-512) ?\((?P<name>.+)\) ?= ?(?P<hash>[0-9a-fA-F]{32,128})$"
)
BSD_ALGORITHMS = {"MD5": "md5", "SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


@dataclass(frozen=True)
class Entry:
    name: str
    algorithm: str
    value: str


def parse_checksum_file(text: str) -> list[Entry]:
    """Every `hash  name`, `hash *name` and `ALGO (name) = hash` line; PGP armour and comments are skipped
    (a clear-signed CHECKSUM file's lines are read as they are)."""
    entries = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        bsd = BSD_LINE.match(line)
        if bsd:
            algorithm = BSD_ALGORITHMS[bsd["algo"].replace("-", "")]
            value = bsd["hash"].lower()
            if len(value) == ALGORITHMS[algorithm]:
                entries.append(Entry(bsd["name"], algorithm, value))
            continue
        gnu = GNU_LINE.match(line)
        if gnu:
            value = gnu["hash"].lower()
            algorithm = algorithm_for_length(value)
            name = gnu["name"]
            if name.startswith("./"):
                name = name[2:]
            if algorithm is not None:
                entries.append(Entry(name, algorithm, value))
    return entries


def file_name_of(url: str) -> str:
    """The file name a URL names: its last path segment, decoded (`.../Fedora-Cloud.raw.xz?x=1`)."""
    path = urlsplit(url).path
    return unquote(PurePosixPath(path).name) if path else ""


def entry_for(entries: list[Entry], name: str, *, url: str = "") -> Entry:
    """The entry for `name` (the strongest algorithm if the file lists it more than once)."""
    found = [entry for entry in entries if entry.name == name or PurePosixPath(entry.name).name == name]
    if not found:
        if not entries:
            raise ChecksumError(
                _(
                    "%(url)s has no checksum lines (hash  name, or SHA256 (name) = hash): is it a checksum file?"
                )
                % {"url": url},
                code="checksum_file_empty",
            )
        raise ChecksumError(
            _("The checksum file %(url)s has no entry for %(name)s (it lists %(names)s).")
            % {
                "url": url,
                "name": name,
                "names": ", ".join(sorted({entry.name for entry in entries})[:5])
                + (", …" if len({entry.name for entry in entries}) > 5 else ""),
            },
            code="checksum_entry_missing",
        )
    order = list(ALGORITHMS)
    return max(found, key=lambda entry: order.index(entry.algorithm))
