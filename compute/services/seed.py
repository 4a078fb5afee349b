"""The cloud-init NoCloud seed: an ISO 9660 image labelled `cidata` with `user-data` and `meta-data`
(https://cloudinit.readthedocs.io/en/latest/reference/datasources/nocloud.html), built with pycdlib."""

import io
import json
import subprocess

import pycdlib


def hash_password(password: str) -> str:
    """SHA-512 crypt, the form cloud-init's chpasswd takes with `type: hash` (the plain password never
    reaches the seed)."""
    result = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def user_data(*, hostname: str, password_hash: str = "") -> str:
    lines = ["#cloud-config", f"hostname: {hostname}", "preserve_hostname: false"]
    if password_hash:
        lines += [
            "ssh_pwauth: true",
            "chpasswd:",
            "  expire: false",
            "  users:",
            "    - name: root",
            f"      password: {password_hash}",
            "      type: hash",
        ]
    return "\n".join(lines) + "\n"


def seed_iso(*, instance_id: str, hostname: str, password_hash: str = "") -> bytes:
    files = {
        "user-data": user_data(hostname=hostname, password_hash=password_hash).encode(),
        "meta-data": (
            f"instance-id: {json.dumps(instance_id)}\nlocal-hostname: {json.dumps(hostname)}\n"
        ).encode(),
    }
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident="cidata")
    for name, data in files.items():
        iso.add_fp(
            io.BytesIO(data),
            len(data),
            "/" + name.upper().replace("-", "") + ".;1",
            rr_name=name,
            joliet_path="/" + name,
        )
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()
