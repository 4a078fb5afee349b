"""Chunk names: a chunk of a standalone store is named by a hash of its bytes, which is how identical
chunks are stored once.

Two schemes name chunks, and one store may hold both (a store converted from the first to the second):

    sha256   "<64 hex digits>"       SHA256 of the chunk: the first scheme, kept by stores made before
                                     BLAKE3 and not yet converted (`manage.py convertchunks`)
    blake3   "<64 hex digits>.b3"    BLAKE3 of the chunk: about four times cheaper to compute, which is
                                     CPU an import spends on the MD5 and SHA256 of the image instead

A name says its own scheme, so manifests list either kind and readers never need to know the store's.
Both keep the first two hex digits in front: the fan-out directory is `chunks/<first two>/`.
"""

from __future__ import annotations

import hashlib

import blake3

SHA256 = "sha256"
BLAKE3 = "blake3"
SCHEMES = (SHA256, BLAKE3)
BLAKE3_SUFFIX = ".b3"


def name_of(data, scheme: str) -> str:
    """The name of a chunk holding `data` under `scheme`."""
    if scheme == BLAKE3:
        # max_threads stays 1: an import's other threads (MD5, SHA256, the request) have the other cores.
        return blake3.blake3(data).hexdigest() + BLAKE3_SUFFIX
    if scheme == SHA256:
        return hashlib.sha256(data).hexdigest()
    raise ValueError(f"unknown chunk name scheme {scheme!r}")


def scheme_of(name: str) -> str:
    return BLAKE3 if name.endswith(BLAKE3_SUFFIX) else SHA256


def matches(name: str, data) -> bool:
    """Whether `data` is what a chunk called `name` must hold."""
    return name_of(data, scheme_of(name)) == name
