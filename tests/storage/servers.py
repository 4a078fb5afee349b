"""Storage servers for the tests: OpenSSH's sshd in a network namespace the test run creates.

Each server is a namespace with a veth pair on a private /30 (10.233.x.0/30, the console's end in the
root namespace, the server's inside), optionally a second one for its data network (10.235.x.0/30) and
a link to another server for the image sync network (10.234.x.0/30); sshd runs in the namespace in a private mount namespace whose
/etc/passwd and /etc/shadow are files of the test (root with a known password and a home under the
test's directory, and a non-root user), so the host's accounts are never touched. The server shares the
host's file systems, so tests can look at what the console wrote over SSH. Everything is removed at the
end: killing the namespace's processes and deleting the namespace removes the veth pair too.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT_PASSWORD = "root-secret-1"
USER = "keeper"
USER_PASSWORD = "keeper-secret-1"
USER_UID = 60998


_indexes = itertools.count()


def next_index() -> int:
    """A number no other server of this process has (namespace and interface names)."""
    return next(_indexes)


def unavailable_reason() -> str:
    """Why storage servers cannot be started here, or ""."""
    if os.geteuid() != 0:
        return "storage servers need root (network namespaces)"
    for tool in ("ip", "sshd", "openssl", "unshare"):
        if shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None:
            return f"storage servers need {tool} (apt-get install iproute2 openssh-server openssl)"
    probe = f"ic-probe-{os.getpid()}"
    result = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if result.returncode != 0:
        return f"cannot create a network namespace: {result.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def _free_subnet() -> int:
    used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    start = os.getpid() % 200
    for step in range(250):
        third = 1 + (start + step) % 250
        if f" 10.233.{third}." not in used:
            return third
    raise RuntimeError("no free 10.233.x.0/30 test subnet")


def _sbin(name: str) -> str:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or name


class StorageServer:
    """One storage server: `address` (inside the namespace), `host_address` (the console's end)."""

    def __init__(self, directory: Path, index: int):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.index = index
        self.third = _free_subnet()
        self.netns = f"ic-t{os.getpid()}-{index}"
        self.host_if = f"ich{os.getpid() % 100000}{index}"
        self.ns_if = f"icn{os.getpid() % 100000}{index}"
        self.address = f"10.233.{self.third}.2"
        self.host_address = f"10.233.{self.third}.1"
        self.port = 22
        self.process: subprocess.Popen | None = None
        self.loops: list[str] = []
        self.root_home = self.directory / "root-home"
        # Outside pytest's private (0700) base directory, so that the non-root user can reach it.
        self.user_home = Path(tempfile.mkdtemp(prefix="ic-keeper-"))
        self._write_accounts()
        self._create_network()

    # Set-up
    def _write_accounts(self) -> None:
        self.root_home.mkdir(exist_ok=True)
        self.user_home.mkdir(exist_ok=True)
        os.chown(self.user_home, USER_UID, USER_UID)
        host_key = self.directory / "ssh_host_ed25519_key"
        if not host_key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        self.set_password("root", ROOT_PASSWORD, user_password=USER_PASSWORD)
        lines = [
            line
            for line in Path("/etc/passwd").read_text().splitlines()
            if not line.startswith(("root:", "sshd:", f"{USER}:"))
        ]
        lines += [
            f"root:x:0:0:root:{self.root_home}:/bin/sh",
            "sshd:x:60999:65534::/run/sshd:/usr/sbin/nologin",
            f"{USER}:x:{USER_UID}:{USER_UID}::{self.user_home}:/bin/sh",
        ]
        (self.directory / "passwd").write_text("\n".join(lines) + "\n")
        (self.directory / "fstab").write_text("# the test server's own fstab\n")
        (self.directory / "sshd_config").write_text(
            "\n".join(
                [
                    "ListenAddress 0.0.0.0",  # every address of its namespace: also the sync network
                    f"Port {self.port}",
                    f"HostKey {host_key}",
                    "PermitRootLogin yes",
                    "PasswordAuthentication yes",
                    "KbdInteractiveAuthentication no",
                    "UsePAM no",
                    "StrictModes no",
                    "PidFile none",
                    "Subsystem sftp internal-sftp",
                    "MaxSessions 64",
                    "MaxStartups 64",
                    "",
                ]
            )
        )

    def set_password(self, user: str, password: str, *, user_password: str | None = None) -> None:
        """Change a password on the server (takes effect on the next login)."""
        passwords = getattr(self, "_passwords", {"root": ROOT_PASSWORD, USER: USER_PASSWORD})
        passwords[user] = password
        if user_password is not None:
            passwords[USER] = user_password
        self._passwords = passwords
        lines = []
        for name, secret in passwords.items():
            hashed = subprocess.run(
                ["openssl", "passwd", "-6", secret], capture_output=True, text=True, check=True
            ).stdout.strip()
            lines.append(f"{name}:{hashed}:19000:0:99999:7:::")
        shadow = self.directory / "shadow"
        # Rewritten in place: the server's bind mount follows the inode.
        with open(shadow, "a+") as file:
            file.seek(0)
            file.truncate()
            file.write("\n".join(lines) + "\n")
        os.chmod(shadow, 0o600)

    def _ip(self, *args: str) -> None:
        subprocess.run([_sbin("ip"), *args], check=True, capture_output=True)

    def _create_network(self) -> None:
        self._ip("netns", "add", self.netns)
        try:
            self._ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
            self._ip("link", "set", self.ns_if, "netns", self.netns)
            self._ip("addr", "add", f"{self.host_address}/30", "dev", self.host_if)
            self._ip("link", "set", self.host_if, "up")
            self._ip("-n", self.netns, "addr", "add", f"{self.address}/30", "dev", self.ns_if)
            self._ip("-n", self.netns, "link", "set", self.ns_if, "up")
            self._ip("-n", self.netns, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise

    # sshd
    def start(self) -> None:
        d = self.directory
        script = (
            "set -e; mount -t tmpfs tmpfs /run; mkdir -m 755 /run/sshd; "
            f"mount --bind {d}/shadow /etc/shadow; mount --bind {d}/passwd /etc/passwd; "
            f"mount --bind {d}/fstab /etc/fstab; "
            f"exec {_sbin('sshd')} -D -e -f {d}/sshd_config"
        )
        log = open(d / "sshd.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [_sbin("ip"), "netns", "exec", self.netns, "sh", "-c", script],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5) as sock:
                    sock.settimeout(2)
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")

    def kill(self) -> None:
        """The server goes away: sshd and every session it runs are killed at once."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            self.process.wait(timeout=10)
            self.process = None
        deadline = time.monotonic() + 5
        while self.pids() and time.monotonic() < deadline:
            time.sleep(0.05)

    def pids(self) -> list[int]:
        result = subprocess.run([_sbin("ip"), "netns", "pids", self.netns], capture_output=True, text=True)
        return [int(pid) for pid in result.stdout.split()]

    def counters(self) -> tuple[int, int]:
        """(received, sent) bytes of the console's end of the link."""
        base = Path("/sys/class/net") / self.host_if / "statistics"
        return int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text())

    def link(self, other: StorageServer) -> str:
        """A second network between this server and `other` (the image sync network): a veth pair between
        the two namespaces on 10.234.x.0/30; this end gets .1, the other .2. Returns the CIDR."""
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        used += subprocess.run(
            ["ip", "-n", self.netns, "-4", "-o", "addr"], capture_output=True, text=True
        ).stdout
        third = next(t for t in range(self.third, self.third + 250) if f" 10.234.{t % 250 + 1}." not in used)
        third = third % 250 + 1
        mine, theirs = (
            f"ics{os.getpid() % 10000}{self.index}a",
            f"ics{os.getpid() % 10000}{other.index}b",
        )
        self._ip(
            "link",
            "add",
            mine,
            "netns",
            self.netns,
            "type",
            "veth",
            "peer",
            "name",
            theirs,
            "netns",
            other.netns,
        )
        self._ip("-n", self.netns, "addr", "add", f"10.234.{third}.1/30", "dev", mine)
        self._ip("-n", other.netns, "addr", "add", f"10.234.{third}.2/30", "dev", theirs)
        self._ip("-n", self.netns, "link", "set", mine, "up")
        self._ip("-n", other.netns, "link", "set", theirs, "up")
        self.sync_if = mine
        return f"10.234.{third}.0/30"

    def sync_counters(self) -> tuple[int, int]:
        """(received, sent) bytes of this server's end of the sync network."""
        import json

        out = subprocess.run(
            [_sbin("ip"), "-n", self.netns, "-s", "-j", "link", "show", "dev", self.sync_if],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        stats = json.loads(out)[0]["stats64"]
        return stats["rx"]["bytes"], stats["tx"]["bytes"]

    def add_data_network(self) -> str:
        """A second link between the console and this server (the data network compute hosts read images
        over): a veth pair on 10.235.x.0/30, the console's end .1 in the root namespace, the server's .2.
        Returns the CIDR (also `data_network`); `data_address` is the server's address in it."""
        used = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
        third = next(
            (self.third + step) % 250 + 1
            for step in range(250)
            if f" 10.235.{(self.third + step) % 250 + 1}." not in used
        )
        self.data_if = f"icd{os.getpid() % 100000}{self.index}"
        inside = self.data_ns_if = f"ice{os.getpid() % 100000}{self.index}"
        self._ip("link", "add", self.data_if, "type", "veth", "peer", "name", inside, "netns", self.netns)
        self._ip("addr", "add", f"10.235.{third}.1/30", "dev", self.data_if)
        self._ip("link", "set", self.data_if, "up")
        self._ip("-n", self.netns, "addr", "add", f"10.235.{third}.2/30", "dev", inside)
        self._ip("-n", self.netns, "link", "set", inside, "up")
        self.data_address = f"10.235.{third}.2"
        self.data_network = f"10.235.{third}.0/30"
        return self.data_network

    def set_data_link(self, *, up: bool) -> None:
        """Take the server's end of the data network down (its address there stops answering: "no route
        to host" once ARP gives up) or up again. The console's end stays up, so its route to the data
        network stays on that veth and nothing is sent to the default route instead."""
        self._ip("-n", self.netns, "link", "set", self.data_ns_if, "up" if up else "down")
        route = subprocess.run(
            [_sbin("ip"), "route", "get", self.data_address], capture_output=True, text=True
        ).stdout
        if f" dev {self.data_if} " not in route:
            raise RuntimeError(
                f"the data address {self.data_address} is not routed to {self.data_if}: {route}"
            )

    def data_counters(self) -> tuple[int, int]:
        """(received, sent) bytes of the console's end of the data network."""
        base = Path("/sys/class/net") / self.data_if / "statistics"
        return int((base / "rx_bytes").read_text()), int((base / "tx_bytes").read_text())

    def add_loop_disk(self, size: int) -> str:
        """A "free disk": a loop device over a sparse file (no partitions, file system or mounts)."""
        backing = self.directory / f"disk{len(self.loops)}.img"
        with open(backing, "wb") as file:
            file.truncate(size)
        device = subprocess.run(
            [_sbin("losetup"), "--find", "--show", "--partscan", str(backing)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        self.loops.append(device)
        return device

    def remove(self) -> None:
        self.kill()  # the mounts made on the server live in its mount namespace and go with it
        for device in self.loops:
            subprocess.run([_sbin("losetup"), "-d", device], capture_output=True)
        shutil.rmtree(self.user_home, ignore_errors=True)
        subprocess.run([_sbin("ip"), "netns", "del", self.netns], capture_output=True)
        subprocess.run([_sbin("ip"), "link", "del", self.host_if], capture_output=True)
        if getattr(self, "data_if", None):
            subprocess.run([_sbin("ip"), "link", "del", self.data_if], capture_output=True)
