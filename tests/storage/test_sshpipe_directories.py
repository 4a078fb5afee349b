"""The private directories of OpenSSH connections (storage/backends/sshpipe.py) do not pile up: an RQ work
horse ends without closing its connections, so the next connection made removes the directories of
processes that are gone."""

import os
import subprocess
import tempfile

from storage.backends import sshpipe


def test_directories_of_processes_that_are_gone_are_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen(["true"])
    ended.wait()
    gone = tmp_path / f"{sshpipe.DIRECTORY_PREFIX}{ended.pid}-abc"
    alive = tmp_path / f"{sshpipe.DIRECTORY_PREFIX}{os.getpid()}-def"
    other = tmp_path / "ic-ssh-notapid"
    for directory in (gone, alive, other):
        directory.mkdir()
        (directory / "known_hosts").write_text("server ssh-ed25519 AAAA\n")

    assert sshpipe.sweep_orphaned_directories() == 1
    assert not gone.exists()
    assert alive.exists() and other.exists()  # this process's, and one it cannot tell
