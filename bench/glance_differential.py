"""The Image API v2 of imageconsole beside a real Glance: the same sequence of calls to both, comparing
status codes, the headers clients read, and JSON shapes (keys and value types). Prints every difference.

    GLANCE_AUTH=headers GLANCE_WEB_DOWNLOAD_LOOPBACK=1 ../shared/peers/glance/setup.sh   # Glance 33
    .venv/bin/python bench/glance_differential.py [--glance http://127.0.0.1:9292]

Ours runs as a deployment does (gunicorn, RQ worker, private Redis, SQLite, a standalone storage; the
Deployment of bench/import_upload.py), authenticated by a console API token in X-Auth-Token; Glance
(no Keystone) by its identity headers. Exit status 0 whatever the differences: it is a report, and the
README's "OpenStack Image API" section explains the ones that remain.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_upload import BASE, PYTHON, Deployment  # noqa: E402

GLANCE_HEADERS = {"X-Identity-Status": "Confirmed", "X-Roles": "admin,member,reader", "X-Project-Id": "p1",
                  "X-User-Id": "u1"}  # fmt: skip
# Headers a client reads (glanceclient, openstacksdk, keystoneauth).
READ_HEADERS = ("Content-Type", "Location", "Content-MD5", "Content-Range", "Accept-Ranges", "Content-Length",
                "OpenStack-image-import-methods", "OpenStack-image-store-ids", "WWW-Authenticate", "X-Openstack-Request-Id")  # fmt: skip
PATCH = "application/openstack-images-v2.1-json-patch"
NOT_COMPARED_LENGTH = True  # bodies differ in text (messages, ids); lengths are compared only for files


class Api:
    def __init__(self, base, headers):
        self.base = base
        self.headers = headers

    def call(self, method, path, body=None, headers=None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        content_type = (
            {"Content-Type": "application/json"} if body is not None and not isinstance(body, bytes) else {}
        )
        request = urllib.request.Request(
            self.base + path,
            data=data,
            method=method,
            headers={**self.headers, **content_type, **(headers or {})},
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()
        except urllib.error.URLError as error:
            # The server answered (and closed) before taking the whole body: a refusal of an upload.
            return 0, {}, str(error.reason).encode()

    def wait(self, image_id, statuses=("active",)):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _status, _headers, body = self.call("GET", f"/v2/images/{image_id}")
            doc = json.loads(body)
            if doc.get("status") in statuses or doc.get("status") == "killed":
                return doc
            time.sleep(0.1)
        raise RuntimeError(f"{self.base}: {image_id} did not become {statuses}")


def is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def shape(value):
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return {bool: "bool", int: "int", float: "float", str: "str", type(None): "null"}[type(value)]


def compare_shapes(ours, theirs, where="") -> list[str]:
    out = []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(theirs.keys() - ours.keys()):
            out.append(f"{where}.{key}: missing in ours (Glance: {theirs[key]})")
        for key in sorted(ours.keys() - theirs.keys()):
            out.append(f"{where}.{key}: only in ours ({ours[key]})")
        for key in sorted(ours.keys() & theirs.keys()):
            out += compare_shapes(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        if ours and theirs:
            out += compare_shapes(ours[0], theirs[0], f"{where}[]")
    elif ours != theirs and "null" not in (ours, theirs):
        out.append(f"{where}: ours {ours}, Glance {theirs}")
    return out


class Differential:
    def __init__(self, ours: Api, theirs: Api):
        self.apis = {"ours": ours, "glance": theirs}
        self.differences = []
        self.calls = 0

    def both(self, label, method, path_of, body_of=None, headers=None, *, json_body=True):
        """Send one call to both; `path_of(side)` and `body_of(side)` may differ by side (ids)."""
        results = {}
        for side, api in self.apis.items():
            path = path_of(side) if callable(path_of) else path_of
            body = body_of(side) if callable(body_of) else body_of
            results[side] = api.call(method, path, body, headers)
        self.calls += 1
        (s1, h1, b1), (s2, h2, b2) = results["ours"], results["glance"]
        found = []
        if s1 != s2:
            found.append(f"status: ours {s1}, Glance {s2}")
        for name in READ_HEADERS:
            v1, v2 = h1.get(name), h2.get(name)
            if name == "Content-Type" and v1 and v2:
                v1, v2 = v1.split(";")[0], v2.split(";")[0]
            if name in ("Location", "X-Openstack-Request-Id", "OpenStack-image-store-ids") and v1 and v2:
                v1, v2 = "set", "set"
            if name == "Content-Length" and (not json_body or s1 >= 400):
                v1 = v2 = None if not json_body and v1 == v2 else v1
            if name == "Content-Length" and json_body:
                continue
            if name == "Content-Type" and s1 == s2 == 204:
                continue  # no body; Glance labels it text/html
            if (v1 is None) != (v2 is None) or (v1 != v2 and name not in ("Content-MD5",)):
                found.append(f"header {name}: ours {v1!r}, Glance {v2!r}")
        if json_body and s1 < 300 and s2 < 300 and b1 and b2:
            try:
                found += compare_shapes(shape(json.loads(b1)), shape(json.loads(b2)), "body")
            except ValueError:
                found.append("body: not JSON on one side")
        if s1 >= 400 and s2 >= 400 and is_json(b1) != is_json(b2):
            found.append(
                f"error body: ours {'JSON' if is_json(b1) else 'text'}, Glance {'JSON' if is_json(b2) else 'text'}"
            )
        print(
            f"{'=' if not found else '≠'} {label}: {method} {path_of('ours') if callable(path_of) else path_of}"
        )
        for line in found:
            print(f"    {line}")
        self.differences += [f"{label}: {line}" for line in found]
        return {side: (status, headers, body) for side, (status, headers, body) in results.items()}


def make_qcow2(root: Path) -> Path:
    raw = root / "small.raw"
    raw.write_bytes(bytes(512 * 1024) + b"imageconsole" * 100000)
    qcow2 = root / "small.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True)
    return qcow2


def run(d: Differential, file: Path, member: dict):
    data = file.read_bytes()
    ids = {}

    def of(side_ids):
        return lambda side: side_ids[side]

    d.both("versions", "GET", lambda side: "/" if side == "glance" else "/")
    for name in ("image", "images", "member", "members"):
        d.both(f"schema {name}", "GET", f"/v2/schemas/{name}")
    create = {
        "name": "diff",
        "disk_format": "qcow2",
        "container_format": "bare",
        "tags": ["a"],
        "os_distro": "x",
    }
    made = d.both("create", "POST", "/v2/images", create)
    ids = {side: json.loads(body)["id"] for side, (_s, _h, body) in made.items()}
    image = lambda suffix="": lambda side: f"/v2/images/{ids[side]}{suffix}"  # noqa: E731
    d.both("show queued", "GET", image())
    d.both("download queued", "GET", image("/file"), json_body=False)
    d.both(
        "upload", "PUT", image("/file"), data, {"Content-Type": "application/octet-stream"}, json_body=False
    )
    for side, api in d.apis.items():
        api.wait(ids[side])
    d.both("show active", "GET", image())
    d.both("download", "GET", image("/file"), json_body=False)
    d.both("download range", "GET", image("/file"), headers={"Range": "bytes=0-99"}, json_body=False)
    d.both(
        "download bad range",
        "GET",
        image("/file"),
        headers={"Range": f"bytes={len(data) + 10}-"},
        json_body=False,
    )
    d.both(
        "upload again",
        "PUT",
        image("/file"),
        data,
        {"Content-Type": "application/octet-stream"},
        json_body=False,
    )
    ops = [{"op": "replace", "path": "/name", "value": "diff-2"}, {"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
           {"op": "add", "path": "/tags", "value": ["b", "c"]}, {"op": "replace", "path": "/min_ram", "value": 64}]  # fmt: skip
    d.both("patch", "PATCH", image(), json.dumps(ops).encode(), {"Content-Type": PATCH})
    d.both("patch read-only", "PATCH", image(), json.dumps([{"op": "replace", "path": "/size", "value": 1}]).encode(),
           {"Content-Type": PATCH})  # fmt: skip
    d.both("patch remove missing", "PATCH", image(), json.dumps([{"op": "remove", "path": "/nope"}]).encode(),
           {"Content-Type": PATCH})  # fmt: skip
    d.both("patch wrong type", "PATCH", image(), b"[]", {"Content-Type": "application/json"})
    d.both("tag add", "PUT", image("/tags/x"), json_body=False)
    d.both("tag delete", "DELETE", image("/tags/x"), json_body=False)
    d.both("tag delete missing", "DELETE", image("/tags/x"), json_body=False)
    d.both("list", "GET", "/v2/images")
    d.both("list limit", "GET", "/v2/images?limit=1")
    d.both("list sorted", "GET", "/v2/images?sort_key=name&sort_dir=asc")
    d.both("list sort=", "GET", "/v2/images?sort=name:asc,created_at:desc")
    d.both("list status", "GET", "/v2/images?status=active")
    d.both("list bad sort", "GET", "/v2/images?sort_key=bogus")
    d.both("list bad marker", "GET", "/v2/images?marker=00000000-0000-0000-0000-000000000000")
    d.both("deactivate", "POST", image("/actions/deactivate"), json_body=False)
    d.both("show deactivated", "GET", image())
    d.both("download deactivated", "GET", image("/file"), json_body=False)
    d.both("reactivate", "POST", image("/actions/reactivate"), json_body=False)
    d.both("visibility shared", "PATCH", image(), json.dumps([{"op": "replace", "path": "/visibility", "value": "shared"}]).encode(),
           {"Content-Type": PATCH})  # fmt: skip
    d.both("member add", "POST", image("/members"), lambda side: {"member": member[side]})
    d.both("members", "GET", image("/members"))
    d.both("member", "GET", lambda side: f"/v2/images/{ids[side]}/members/{member[side]}")
    d.both("member add again", "POST", image("/members"), lambda side: {"member": member[side]})
    d.both(
        "member delete",
        "DELETE",
        lambda side: f"/v2/images/{ids[side]}/members/{member[side]}",
        json_body=False,
    )
    d.both("info import", "GET", "/v2/info/import")
    d.both("info stores", "GET", "/v2/info/stores")
    made = d.both(
        "create for stage",
        "POST",
        "/v2/images",
        {"name": "staged", "disk_format": "qcow2", "container_format": "bare"},
    )
    staged = {side: json.loads(body)["id"] for side, (_s, _h, body) in made.items()}
    d.both(
        "stage",
        "PUT",
        lambda side: f"/v2/images/{staged[side]}/stage",
        data,
        {"Content-Type": "application/octet-stream"},
        json_body=False,
    )
    d.both("show staged", "GET", lambda side: f"/v2/images/{staged[side]}")
    d.both(
        "import glance-direct",
        "POST",
        lambda side: f"/v2/images/{staged[side]}/import",
        {"method": {"name": "glance-direct"}},
        json_body=False,
    )
    for side, api in d.apis.items():
        api.wait(staged[side])
    d.both("tasks", "GET", lambda side: f"/v2/images/{staged[side]}/tasks")
    d.both(
        "import bad method",
        "POST",
        lambda side: f"/v2/images/{staged[side]}/import",
        {"method": {"name": "nope"}},
        json_body=False,
    )
    d.both(
        "protect",
        "PATCH",
        image(),
        json.dumps([{"op": "replace", "path": "/protected", "value": True}]).encode(),
        {"Content-Type": PATCH},
    )
    d.both("delete protected", "DELETE", image(), json_body=False)
    d.both(
        "unprotect",
        "PATCH",
        image(),
        json.dumps([{"op": "replace", "path": "/protected", "value": False}]).encode(),
        {"Content-Type": PATCH},
    )
    d.both("delete", "DELETE", image(), json_body=False)
    d.both("show deleted", "GET", image())
    d.both("delete staged", "DELETE", lambda side: f"/v2/images/{staged[side]}", json_body=False)
    d.both("create bad format", "POST", "/v2/images", {"name": "x", "disk_format": "nope"})
    d.both("create read-only field", "POST", "/v2/images", {"name": "x", "size": 5})
    d.both("not found", "GET", "/v2/images/00000000-0000-0000-0000-000000000000")
    d.both(
        "no token",
        "GET",
        "/v2/images",
        headers={"X-Auth-Token": "", "X-Identity-Status": "Invalid", "X-Roles": ""},
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--glance", default="http://127.0.0.1:9292")
    arguments = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="glance-diff-"))
    deployment = Deployment(root)
    try:
        manage = [PYTHON, str(BASE / "manage.py")]
        other = subprocess.run(
            [*manage, "shell", "-c", "from tenants import services as t\nprint(t.tenant_create(name='bench-2').pk)"],
            env=deployment.env, cwd=BASE, check=True, capture_output=True, text=True,
        ).stdout.split()[-1]  # fmt: skip
        ours = Api(f"http://127.0.0.1:{deployment.port}/openstack/image", {"X-Auth-Token": deployment.token})
        theirs = Api(arguments.glance, GLANCE_HEADERS)
        differential = Differential(ours, theirs)
        run(differential, make_qcow2(root), {"ours": other, "glance": "p2"})
        print(f"\n{differential.calls} calls, {len(differential.differences)} differences")
    finally:
        deployment.stop()


if __name__ == "__main__":
    main()
