"""Hash midstates carried across processes (storage.backends.hashstate): an upload's MD5 and SHA256 go on
in another web process from where the last request left them, and give the digest of the whole stream."""

import hashlib
import os
import pickle
import subprocess
import sys

import pytest

from storage.backends import hashstate


@pytest.mark.parametrize("name", ["md5", "sha1", "sha256", "sha512"])
def test_a_midstate_continues_in_another_process(name):
    first, second = os.urandom(3 * 1024 * 1024 + 17), os.urandom(1024 * 1024 + 5)
    hasher = hashlib.new(name)
    hasher.update(first)
    state = hashstate.export(hasher)
    assert state is not None and len(state) == hashstate.SIZES[name]
    script = (
        "import pickle, sys; from storage.backends import hashstate; "
        "name, state, data = pickle.load(sys.stdin.buffer); "
        "hasher = hashstate.restore(name, state); hasher.update(data); print(hasher.hexdigest())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=pickle.dumps((name, state, second)),
        capture_output=True,
        check=True,
    )
    assert done.stdout.decode().strip() == hashlib.new(name, first + second).hexdigest()


def test_named_hashers_travel_together_and_a_bad_state_is_refused():
    hashers = {"md5": hashlib.md5(b"abc", usedforsecurity=False), "sha256": hashlib.sha256(b"abc")}
    restored = hashstate.restore_all(hashstate.export_all(hashers))
    for name, hasher in restored.items():
        hasher.update(b"def")
        assert hasher.hexdigest() == hashlib.new(name, b"abcdef").hexdigest()
    with pytest.raises(ValueError):
        hashstate.restore("sha256", b"short")
    assert not hashstate.supported("sha384")  # not a layout this module knows: callers read again
    assert hashstate.export(hashlib.sha384()) is None
