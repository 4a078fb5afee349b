"""Start libvirt on this machine when no libvirt daemon answers: `python -m compute.daemon`.

Used by `make run` (scripts/run.py), the tests and CI. As root without systemd, `virtlogd --daemon` and
`libvirtd --daemon` are enough; with systemd running, the services are started instead. Imports no Django.
"""

import os
import shutil
import subprocess
import sys
import time

LOCAL_URI = "qemu:///system"


def answers(uri: str = LOCAL_URI) -> bool:
    try:
        import libvirt
    except ImportError:
        return False
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError:
        return False
    return True


def ensure_libvirtd(timeout: float = 30.0) -> str:
    """Make sure qemu:///system answers; returns what was done. Raises RuntimeError if it cannot."""
    if answers():
        return "libvirtd already running"
    if shutil.which("libvirtd") is None:
        raise RuntimeError(
            "libvirtd is not installed: apt-get install libvirt-daemon-system qemu-system-x86 ovmf"
        )
    if os.path.isdir("/run/systemd/system"):  # sd_booted(3): systemd is PID 1
        subprocess.run(["systemctl", "start", "virtlogd", "libvirtd"], check=False)
    else:
        if subprocess.run(["pgrep", "-x", "virtlogd"], capture_output=True).returncode != 0:
            subprocess.run(["virtlogd", "--daemon"], check=False)
        if subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode != 0:
            subprocess.run(["libvirtd", "--daemon"], check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers():
            return "libvirtd started"
        time.sleep(0.3)
    raise RuntimeError("libvirtd did not answer at qemu:///system")


if __name__ == "__main__":
    try:
        print(ensure_libvirtd())
    except RuntimeError as error:
        print(error, file=sys.stderr)
        sys.exit(1)
