"""Expected checksums of any algorithm, of the file as sent or of the decompressed image, verified in the
same pass as the bytes are received; a mismatch fails the import naming both values and keeps nothing."""

import hashlib

import pytest

from images.models import Image, ImageReplica
from tests.images.fetch.conftest import FileRoute
from tests.images.fetch.test_url_import import import_url
from tests.images.imports.conftest import stored_bytes
from tests.images.imports.test_leftovers import snapshot

from .conftest import compress, put


def digest(algorithm, data):
    return hashlib.new(algorithm, data).hexdigest()


def checksum_fields(algorithm, value, of):
    return {
        "checksum_algorithm": algorithm,
        "checksum_expected": value,
        "checksum_of": of,
        "checksum_source": "typed",
    }


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha256", "sha512"])
def test_put_of_a_plain_qcow2_verifies_each_algorithm(
    algorithm,
    client,
    owner,
    auth,
    standalone,
    qcow2_image,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    plain = qcow2_image.read_bytes()
    image = start_import(standalone, "qcow2", **checksum_fields(algorithm, digest(algorithm, plain), "sent"))

    image = put(client, auth(owner), image, plain, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_verified_at is not None
    assert stored_bytes(image) == plain


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "sha512"])
def test_a_mismatch_fails_naming_both_values_and_keeps_nothing(
    algorithm,
    client,
    owner,
    auth,
    standalone,
    qcow2_image,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    plain = qcow2_image.read_bytes()
    wrong = digest(algorithm, b"another file")
    before = snapshot(standalone)
    image = start_import(standalone, "qcow2", **checksum_fields(algorithm, wrong, "sent"))

    image = put(client, auth(owner), image, plain, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.FAILED
    assert wrong in image.error and digest(algorithm, plain) in image.error
    assert image.checksum_verified_at is None
    assert not ImageReplica.objects.filter(image=image).exists()
    assert snapshot(standalone) == before


def test_a_converted_upload_verifies_md5_of_its_staged_bytes(
    client, owner, auth, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    vmdk = disks.convert(disks.raw(size=4 * 1024 * 1024), "vmdk").read_bytes()
    image = start_import(standalone, "vmdk", **checksum_fields("md5", digest("md5", vmdk), "sent"))

    image = put(client, auth(owner), image, vmdk, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_verified_at is not None


@pytest.mark.parametrize(("codec", "algorithm"), [("xz", "sha512"), ("gzip", "sha1"), ("zstd", "sha256")])
def test_compressed_upload_verifies_the_file_as_sent(
    codec,
    algorithm,
    client,
    owner,
    auth,
    standalone,
    qcow2_image,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    plain = qcow2_image.read_bytes()
    packed = compress(qcow2_image, codec).read_bytes()
    image = start_import(standalone, "qcow2", **checksum_fields(algorithm, digest(algorithm, packed), "sent"))

    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_verified_at is not None
    assert stored_bytes(image) == plain


def test_compressed_upload_verifies_the_decompressed_image(
    client, owner, auth, standalone, qcow2_image, start_import, run_jobs, django_capture_on_commit_callbacks
):
    plain = qcow2_image.read_bytes()
    packed = compress(qcow2_image, "bzip2").read_bytes()
    image = start_import(standalone, "qcow2", **checksum_fields("sha512", digest("sha512", plain), "image"))

    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_verified_at is not None


def test_compressed_upload_with_the_image_checksum_given_as_the_files_fails(
    client, owner, auth, standalone, qcow2_image, start_import, run_jobs, django_capture_on_commit_callbacks
):
    """The checksum of the decompressed image given as that of the file as sent: both named, nothing kept."""
    plain = qcow2_image.read_bytes()
    packed = compress(qcow2_image, "xz").read_bytes()
    before = snapshot(standalone)
    image = start_import(standalone, "qcow2", **checksum_fields("sha256", digest("sha256", plain), "sent"))

    image = put(client, auth(owner), image, packed, django_capture_on_commit_callbacks, run_jobs)

    assert image.status == Image.Status.FAILED
    assert digest("sha256", plain) in image.error and digest("sha256", packed) in image.error
    assert "as sent" in image.error
    assert not ImageReplica.objects.filter(image=image).exists()
    assert snapshot(standalone) == before


@pytest.mark.usefixtures("fetch_settings")
@pytest.mark.parametrize("of", ["sent", "image"])
def test_compressed_url_import_verifies_sha512(
    of, api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    plain = qcow2_image.read_bytes()
    packed = compress(qcow2_image, "gzip").read_bytes()
    server = http_server()
    # A dropped connection resumes into the same decompressor, and the same hash of the bytes as sent.
    server.routes["/cloud.qcow2.gz"] = FileRoute(packed, drop_at=len(packed) // 2)
    expected = digest("sha512", packed if of == "sent" else plain)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/cloud.qcow2.gz"),
        django_capture_on_commit_callbacks,
        run_jobs,
        checksum=expected,
        checksum_algorithm="sha512",
        checksum_of=of,
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert (image.checksum_algorithm, image.checksum_expected, image.checksum_of) == ("sha512", expected, of)
    assert image.checksum_source == "typed" and image.checksum_verified_at is not None
    assert stored_bytes(image) == plain


@pytest.mark.usefixtures("fetch_settings")
def test_url_import_of_a_server_that_restarts_verifies_the_restarted_bytes(
    api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    packed = compress(qcow2_image, "xz").read_bytes()
    server = http_server()
    server.routes["/cloud.qcow2.xz"] = FileRoute(packed, ranges=False, drop_at=len(packed) // 2)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/cloud.qcow2.xz"),
        django_capture_on_commit_callbacks,
        run_jobs,
        checksum=digest("sha1", packed),
        checksum_algorithm="sha1",
    )

    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_verified_at is not None


@pytest.mark.usefixtures("fetch_settings")
def test_tampered_url_import_fails_naming_both_values(
    api, owner, standalone, qcow2_image, http_server, django_capture_on_commit_callbacks, run_jobs
):
    packed = compress(qcow2_image, "zstd").read_bytes()
    expected = digest("sha256", packed)
    wrong = digest("sha256", b"not this file")
    server = http_server()
    server.routes["/cloud.qcow2.zst"] = FileRoute(packed)
    before = snapshot(standalone)

    image = import_url(
        api,
        owner,
        standalone,
        server.url("/cloud.qcow2.zst"),
        django_capture_on_commit_callbacks,
        run_jobs,
        checksum=wrong,
    )

    assert image.status == Image.Status.FAILED
    assert wrong in image.error and expected in image.error
    assert not ImageReplica.objects.filter(image=image).exists()
    assert snapshot(standalone) == before


def test_api_and_detail_page_show_the_verified_checksum(
    client,
    owner,
    owner_client,
    auth,
    standalone,
    qcow2_image,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    plain = qcow2_image.read_bytes()
    value = digest("sha512", plain)
    image = start_import(standalone, "qcow2", **checksum_fields("sha512", value, "sent"))
    image = put(client, auth(owner), image, plain, django_capture_on_commit_callbacks, run_jobs)

    shown = client.get(f"/api/v1/images/{image.pk}/", **auth(owner)).json()
    assert shown["checksum_algorithm"] == "sha512" and shown["checksum_expected"] == value
    assert shown["checksum_of"] == "sent" and shown["checksum_source"] == "typed"
    assert shown["checksum_verified_at"]
    page = owner_client.get(f"/images/{image.pk}/").content.decode()
    assert value in page and "SHA-512" in page and 'data-testid="checksum-verified"' in page


@pytest.mark.parametrize("fmt", ["qcow2", "vmdk"])
@pytest.mark.parametrize("live", [True, False])
def test_an_upload_in_several_requests_keeps_or_rebuilds_its_extra_hash(
    fmt, live, standalone, disks, start_import, run_jobs, django_capture_on_commit_callbacks
):
    """The SHA-512 hasher goes on across requests in one process (live state) and is rebuilt by the
    re-read of what was received elsewhere; stored (qcow2) and staged (vmdk) alike."""
    from images.services import upload_begin
    from images.services.receiving import ImportReceiver, live_forget

    path = disks.convert(disks.raw(size=6 * 1024 * 1024), fmt)
    data = path.read_bytes()
    image = start_import(standalone, fmt, **checksum_fields("sha512", digest("sha512", data), "sent"))
    upload_begin(image_id=image.pk, length=len(data), filename=path.name)
    bounds = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    with django_capture_on_commit_callbacks(execute=True):
        for start, end in zip(bounds, bounds[1:], strict=False):
            if not live:
                live_forget()
            with ImportReceiver(image_id=image.pk, offset=start) as receiver:
                for offset in range(start, end, 1024 * 1024):
                    receiver.write(data[offset : min(end, offset + 1024 * 1024)])
                receiver.commit()
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()

    image.refresh_from_db()
    assert image.status == Image.Status.AVAILABLE, image.error
    assert image.checksum_verified_at is not None


def test_the_api_schema_says_which_bytes_each_checksum_field_covers(client, owner, auth):
    import json

    schema = client.get("/api/v1/schema/?format=json", **auth(owner))
    assert schema.status_code == 200
    components = json.loads(schema.content)["components"]["schemas"]
    create = components["ImageCreate"]["properties"]
    assert "decompression" in create["checksum_of"]["description"]
    assert "compressed" in create["checksum_of"]["description"]
    assert {
        "checksum",
        "checksum_algorithm",
        "checksum_file_url",
        "checksum_signature_url",
        "file_name",
    } <= set(create)
    shown = components["Image"]["properties"]
    assert "decompression" in shown["checksum_of"]["description"]
    assert {"checksum_expected", "checksum_source", "checksum_verified_at", "checksum_signer"} <= set(shown)


@pytest.mark.parametrize("algorithm", ["md5", "sha1"])
def test_a_distributed_storage_verifies_and_keeps_nothing_on_a_mismatch(
    algorithm,
    client,
    owner,
    auth,
    distributed,
    qcow2_image,
    start_import,
    run_jobs,
    django_capture_on_commit_callbacks,
):
    plain = qcow2_image.read_bytes()
    good = start_import(distributed, "qcow2", **checksum_fields(algorithm, digest(algorithm, plain), "sent"))
    good = put(client, auth(owner), good, plain, django_capture_on_commit_callbacks, run_jobs)
    assert good.status == Image.Status.AVAILABLE, good.error
    before = snapshot(distributed)

    bad = start_import(distributed, "qcow2", **checksum_fields(algorithm, digest(algorithm, b"x"), "sent"))
    bad = put(
        client, auth(owner), bad, plain[:-512] + bytes(512), django_capture_on_commit_callbacks, run_jobs
    )

    assert bad.status == Image.Status.FAILED and digest(algorithm, b"x") in bad.error
    assert snapshot(distributed) == before
