"""python-glanceclient, python-openstackclient and openstacksdk, installed from PyPI, driven as a user
would against a live server: uploads, lists, shows, updates, downloads, tags, members, web-download
imports and deletes; downloaded files equal the uploaded ones; a hostile image is refused."""

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from images.models import Image, ImageShare
from tenants import services

from ..conftest import PASSWORD
from ..images.imports.conftest import qemu_img
from .conftest import MiB
from .live import LiveServer

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server(standalone, settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
    settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    settings.IMPORT_ALLOWED_PORTS = ["*"]
    live = LiveServer()
    yield live
    live.stop()


@pytest.fixture
def file_server(disks):
    handler = partial(SimpleHTTPRequestHandler, directory=str(disks.root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def client_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_") and "proxy" not in k.lower()}
    env.update(HOME=str(tmp_path), NO_PROXY="*", PYTHONWARNINGS="ignore")
    return env


def run(env, *args, ok=True):
    result = subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        # No stdin at all, as in a cron job: glanceclient reads image data from any other stdin.
        preexec_fn=lambda: os.close(0),
    )
    if ok:
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def table_value(output: str, field: str) -> str:
    match = re.search(rf"^\|\s*{re.escape(field)}\s*\|\s*(.*?)\s*\|$", output, re.M)
    assert match, output
    return match.group(1)


def settle(run_jobs, django_capture_on_commit_callbacks, rounds=3):
    for _round in range(rounds):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()


def _clouds(server, client_env, tmp_path) -> dict:
    """A clouds.yaml that logs in by password through /openstack/identity/v3, and the env naming it."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(json.dumps({"clouds": {"console": {
        "auth": {"auth_url": f"{server.url}/openstack/identity/v3", "username": "acme-owner",
                 "password": PASSWORD, "project_name": "acme", "user_domain_name": "Default",
                 "project_domain_name": "Default"},
        "identity_api_version": 3, "region_name": "RegionOne"}}}))  # fmt: skip
    return {**client_env, "OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": "console"}


def test_glance_cli(server, owner, other_tenant, disks, file_server, client_env, run_jobs,
                    django_capture_on_commit_callbacks, tmp_path):  # fmt: skip
    _token, key = services.api_token_create(user=owner)
    glance = ["glance", "--os-image-url", f"{server.url}/openstack/image", "--os-auth-token", key,
              "--os-image-api-version", "2"]  # fmt: skip
    path = disks.convert(disks.raw(size=6 * MiB), "qcow2")
    data = path.read_bytes()
    out = run(client_env, *glance, "image-create", "--name", "cirros", "--disk-format", "qcow2",
              "--container-format", "bare", "--file", str(path)).stdout  # fmt: skip
    image_id = table_value(out, "id")
    settle(run_jobs, django_capture_on_commit_callbacks)
    assert Image.objects.get(pk=image_id).status == "available"
    assert image_id in run(client_env, *glance, "image-list").stdout
    shown = run(client_env, *glance, "image-show", image_id).stdout
    assert table_value(shown, "status") == "active"
    assert table_value(shown, "checksum") == hashlib.md5(data).hexdigest()
    run(client_env, *glance, "image-update", "--property", "os_distro=cirros", "--min-ram", "128", image_id)
    image = Image.objects.get(pk=image_id)
    assert image.properties == {"os_distro": "cirros"} and image.min_ram == 128
    out_file = tmp_path / "out.qcow2"
    run(client_env, *glance, "image-download", "--file", str(out_file), image_id)
    assert out_file.read_bytes() == data
    run(client_env, *glance, "image-tag-update", image_id, "gold")
    assert Image.objects.get(pk=image_id).labels == ["gold"]
    # Members: the other tenant is asked, then accepts with its own token.
    run(client_env, *glance, "member-create", image_id, str(other_tenant.pk))
    assert ImageShare.objects.get(image_id=image_id).status == "pending"
    _token, their_key = services.api_token_create(user=other_tenant.memberships.get(role="owner").user)
    theirs = [*glance[:4], their_key, *glance[5:]]
    assert image_id not in run(client_env, *theirs, "image-list").stdout
    run(client_env, *theirs, "member-update", image_id, str(other_tenant.pk), "accepted")
    assert image_id in run(client_env, *theirs, "image-list").stdout
    # web-download through our URL import.
    out = run(client_env, *glance, "image-create-via-import", "--name", "fetched", "--disk-format", "qcow2",
              "--container-format", "bare", "--import-method", "web-download",
              "--uri", f"{file_server}/{path.name}").stdout  # fmt: skip
    fetched_id = table_value(out, "id")
    settle(run_jobs, django_capture_on_commit_callbacks)
    fetched = Image.objects.get(pk=fetched_id)
    assert fetched.status == "available", fetched.error
    assert fetched.sha256 == hashlib.sha256(data).hexdigest()
    run(client_env, *glance, "image-delete", fetched_id)
    assert Image.objects.get(pk=fetched_id).status == "deleted"
    # A hostile file: refused, the image killed, nothing stored.
    evil = disks.root / "backed.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(evil), "1M")
    result = run(client_env, *glance, "image-create", "--name", "evil", "--disk-format", "qcow2",
                 "--container-format", "bare", "--file", str(evil), ok=False)  # fmt: skip
    settle(run_jobs, django_capture_on_commit_callbacks)
    bad = Image.objects.get(name="evil")
    assert bad.status == "failed" and "backing file" in bad.error, result.stderr
    assert not bad.replicas.exists()


def test_glance_cli_store(
    server, owner, second, disks, client_env, run_jobs, django_capture_on_commit_callbacks
):
    # `--store` is checked against GET /v2/info/stores, then sent as X-Image-Meta-Store with the data.
    _token, key = services.api_token_create(user=owner)
    glance = ["glance", "--os-image-url", f"{server.url}/openstack/image", "--os-auth-token", key,
              "--os-image-api-version", "2"]  # fmt: skip
    path = disks.convert(disks.raw(size=2 * MiB), "qcow2")
    out = run(client_env, *glance, "image-create", "--name", "placed", "--disk-format", "qcow2",
              "--container-format", "bare", "--store", str(second.pk), "--file", str(path)).stdout  # fmt: skip
    image_id = table_value(out, "id")
    settle(run_jobs, django_capture_on_commit_callbacks)
    image = Image.objects.get(pk=image_id)
    assert image.status == "available" and image.storage == second
    assert list(image.replicas.values_list("storage", flat=True)) == [second.pk]


def test_openstack_cli_logs_in_by_password(server, owner, disks, client_env, run_jobs,
                                           django_capture_on_commit_callbacks, tmp_path):  # fmt: skip
    env = _clouds(server, client_env, tmp_path)
    path = disks.convert(disks.raw(size=4 * MiB), "qcow2")
    created = json.loads(run(env, "openstack", "image", "create", "--disk-format", "qcow2", "--container-format",
                             "bare", "--file", str(path), "-f", "json", "ubuntu").stdout)  # fmt: skip
    image_id = created["id"]
    settle(run_jobs, django_capture_on_commit_callbacks)
    listed = json.loads(run(env, "openstack", "image", "list", "-f", "json").stdout)
    assert [row["ID"] for row in listed] == [image_id]
    shown = json.loads(run(env, "openstack", "image", "show", "-f", "json", image_id).stdout)
    assert shown["status"] == "active" and shown["checksum"] == hashlib.md5(path.read_bytes()).hexdigest()
    run(env, "openstack", "image", "set", "--property", "hw_disk_bus=virtio", "--protected", image_id)
    image = Image.objects.get(pk=image_id)
    assert image.properties["hw_disk_bus"] == "virtio" and image.protected
    out_file = tmp_path / "saved.qcow2"
    run(env, "openstack", "image", "save", "--file", str(out_file), image_id)
    assert out_file.read_bytes() == path.read_bytes()
    assert run(env, "openstack", "image", "delete", image_id, ok=False).returncode != 0  # protected
    run(env, "openstack", "image", "set", "--unprotected", image_id)
    run(env, "openstack", "image", "delete", image_id)
    assert Image.objects.get(pk=image_id).status == "deleted"


def test_openstacksdk(server, owner, disks, file_server, client_env, run_jobs,
                     django_capture_on_commit_callbacks, tmp_path):  # fmt: skip
    env = _clouds(server, client_env, tmp_path)
    sdk = [sys.executable, str(Path(__file__).with_name("sdk_client.py"))]

    def call(*args):
        result = subprocess.run(
            [*sdk, *args], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path
        )
        assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result.stdout.strip()

    path = disks.convert(disks.raw(size=4 * MiB), "qcow2")
    image_id = call("create", "sdk", str(path))
    settle(run_jobs, django_capture_on_commit_callbacks)
    shown = json.loads(call("show", image_id))
    assert shown["status"] == "active" and shown["checksum"] == hashlib.md5(path.read_bytes()).hexdigest()
    out_file = tmp_path / "sdk.qcow2"
    call("download", image_id, str(out_file))
    assert out_file.read_bytes() == path.read_bytes()
    fetched_id = call("web-download", "sdk-web", f"{file_server}/{path.name}")
    settle(run_jobs, django_capture_on_commit_callbacks)
    assert json.loads(call("show", fetched_id))["status"] == "active"
    call("delete", fetched_id)
    assert Image.objects.get(pk=fetched_id).status == "deleted"
    # The SDK's own bookkeeping properties are kept on the image.
    assert "owner_specified.openstack.sha256" in Image.objects.get(pk=image_id).properties
