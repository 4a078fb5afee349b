"""manage.py importimage --url: created by the command, fetched by the imports workers."""

from io import StringIO
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command

from images.models import Image, UploadSession
from tests.images.imports.conftest import MiB, stored_bytes

from .conftest import FTP_PASSWORD, FTP_USER, FileRoute

pytestmark = pytest.mark.usefixtures("fetch_settings")


def test_importimage_url_in_the_background(
    tenant, standalone, disks, http_server, django_capture_on_commit_callbacks, run_jobs
):
    qcow2 = disks.convert(disks.raw(size=4 * MiB), "qcow2").read_bytes()
    server = http_server()
    server.routes["/centos.qcow2"] = FileRoute(qcow2)
    out = StringIO()

    with django_capture_on_commit_callbacks(execute=True):
        call_command(
            "importimage",
            "--url",
            server.url("/centos.qcow2"),
            "--tenant",
            "acme",
            "--name",
            "centos",
            "--format",
            "qcow2",
            "--storage",
            standalone.name,
            "--background",
            stdout=out,
        )
    for _round in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    image = Image.objects.get(name="centos")
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.source == Image.Source.URL
    assert stored_bytes(image) == qcow2


def test_importimage_url_prints_and_stores_the_password_redacted(tenant, standalone, ftp_server):
    out = StringIO()
    url = f"ftp://{FTP_USER}:{quote(FTP_PASSWORD, safe='')}@127.0.0.1:{ftp_server.port}/x.qcow2"

    call_command(
        "importimage",
        "--url",
        url,
        "--tenant",
        "acme",
        "--name",
        "x",
        "--format",
        "qcow2",
        "--storage",
        standalone.name,
        "--background",
        stdout=out,
    )

    assert quote(FTP_PASSWORD, safe="") not in out.getvalue() and ":***@" in out.getvalue()
    assert UploadSession.objects.get().source_url.startswith(f"ftp://{FTP_USER}:***@")


def test_importimage_refused_url_creates_nothing(tenant, standalone, settings):
    settings.IMPORT_ALLOWED_NETWORKS = []
    with pytest.raises(CommandError, match="loopback"):
        call_command(
            "importimage",
            "--url",
            "http://127.1/x.qcow2",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--format",
            "qcow2",
            "--storage",
            standalone.name,
        )
    assert not Image.objects.exists()
