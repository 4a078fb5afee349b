"""Download links: created in the dialog and the API, used without a login, refused when expired,
revoked, altered or another tenant's; every download start in the operation log."""

import hashlib
import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.utils import timezone

from images.downloads import services
from images.models import DownloadLink, DownloadSettings, Image
from tenants import services as tenant_services
from tenants.models import OperationLog

from .conftest import MiB


def new_link(client, image) -> str:
    return link_path_of(client.post(f"/images/{image.pk}/download/"))


def link_path_of(response) -> str:
    assert response.status_code == 201, response.content[:500]
    html = response.content.decode()
    url = re.search(
        r'data-testid="new-link-url" value="([^"]+)"|value="([^"]+)" data-testid="new-link-url"', html
    )
    url = url.group(1) or url.group(2)
    return urlsplit(url.replace("&amp;", "&")).path


def fetch(path, **headers) -> tuple[int, bytes, dict]:
    response = Client().get(path, **{f"HTTP_{k}": v for k, v in headers.items()})
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response.status_code, body, response


def test_owner_creates_a_link_that_serves_the_image_without_login(owner_client, standalone, store_image):
    image = store_image(standalone, size=12 * MiB)
    page = owner_client.get(f"/images/{image.pk}/download/").content.decode()
    assert image.md5 in page and image.sha256 in page and f"{image.name}.qcow2" in page
    response = owner_client.post(f"/images/{image.pk}/download/")
    created = response.content.decode()
    # Shown once: the address with a copy button, its expiry, the file's name, size and checksums.
    assert 'data-testid="copy-link"' in created and image.md5 in created and image.sha256 in created
    assert f"{image.size}" in created.replace(",", "")
    expiry = re.search(r'data-testid="new-link-expiry">([^<]+)<', created)
    assert expiry and str((timezone.localtime() + timedelta(hours=24)).year) in expiry.group(1)
    path = link_path_of(response)
    assert path.startswith("/d/") and path.endswith(f"/{image.name}.qcow2")
    status, body, response = fetch(path)
    assert status == 200 and hashlib.sha256(body).hexdigest() == image.sha256
    assert response["ETag"] == f'"{image.sha256}"' and response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(image.size)
    status, body, response = fetch(path, RANGE="bytes=5000000-5999999")
    assert status == 206 and body == image.source_path.read_bytes()[5000000:6000000]
    # Only the token's hash is kept.
    token = path.split("/")[2]
    link = DownloadLink.objects.get(image=image)
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(DownloadLink.objects.values().get(pk=link.pk))
    assert abs((link.expires_at - timezone.now()) - timedelta(hours=24)) < timedelta(minutes=1)
    # The page lists it as a live link, with Revoke.
    page = owner_client.get(f"/images/{image.pk}/download/").content.decode()
    assert page.count('data-testid="live-link"') == 1 and 'data-testid="revoke-link"' in page


def test_every_download_start_is_logged_with_maker_address_and_range(
    owner_client, owner, standalone, store_image
):
    image = store_image(standalone, size=4 * MiB)
    path = new_link(owner_client, image)
    Client(REMOTE_ADDR="127.0.0.9").get(path, HTTP_RANGE="bytes=100-199")
    entry = OperationLog.objects.filter(action="image.download").get()
    assert entry.client_ip == "127.0.0.9" and entry.actor == owner and entry.target_id == str(image.pk)
    assert "bytes=100-199" in entry.message and owner.username in entry.message
    assert OperationLog.objects.filter(action="image.download_link.create", target_id=str(image.pk)).exists()


def test_expired_revoked_altered_and_wrong_name_links_fail(owner_client, standalone, store_image, settings):
    image = store_image(standalone, size=1 * MiB)
    path = new_link(owner_client, image)
    token, name = path.split("/")[2], path.split("/")[3]
    assert fetch(path)[0] == 200
    # Altered token, another file name: 404 with a page that says so.
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    status, body, _ = fetch(f"/d/{altered}/{name}")
    assert status == 404 and b"not a download link" in body
    assert fetch(f"/d/{token}/other.qcow2")[0] == 404
    # Time moves past the expiry: 410.
    link = DownloadLink.objects.get(image=image)
    later = timezone.now() + timedelta(hours=24, minutes=1)
    from unittest import mock

    with mock.patch("django.utils.timezone.now", return_value=later):
        status, body, _ = fetch(path)
    assert status == 410 and b"expired" in body
    # Revoked: 410 at once.
    assert owner_client.post(f"/images/{image.pk}/download/{link.pk}/revoke/").status_code == 200
    status, body, _ = fetch(path)
    assert status == 410 and b"revoked" in body
    assert OperationLog.objects.filter(action="image.download_link.revoke").exists()


def test_link_stops_when_the_image_is_deleted(owner_client, standalone, store_image):
    image = store_image(standalone, size=1 * MiB)
    path = new_link(owner_client, image)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.DELETED)
    assert fetch(path)[0] == 410


def test_validity_comes_from_the_administrators_setting(owner_client, standalone, store_image):
    DownloadSettings.objects.update_or_create(pk=1, defaults={"link_validity_hours": 2})
    image = store_image(standalone, size=1 * MiB)
    new_link(owner_client, image)
    link = DownloadLink.objects.get(image=image)
    assert abs((link.expires_at - timezone.now()) - timedelta(hours=2)) < timedelta(minutes=1)


def test_view_only_subaccount_downloads_but_does_not_export(subaccount_client, standalone, store_image):
    image = store_image(standalone, size=1 * MiB)
    path = new_link(subaccount_client, image)
    assert fetch(path)[0] == 200
    assert subaccount_client.get(f"/images/{image.pk}/export/").status_code == 403
    assert subaccount_client.post(f"/images/{image.pk}/export/", {"format": "vmdk"}).status_code == 403
    assert not image.exports.exists()
    # The list and the image's page offer it Download and nothing that changes the image.
    row = subaccount_client.get("/images/").content.decode()
    assert 'data-testid="row-download"' in row and 'data-testid="row-export"' not in row
    detail = subaccount_client.get(f"/images/{image.pk}/").content.decode()
    assert 'data-testid="detail-download"' in detail and 'data-testid="detail-export"' not in detail
    assert f'href="/images/{image.pk}/download/"' in detail


def test_another_tenants_image_and_links_are_404(
    owner_client, other_client, standalone, store_image, other_tenant
):
    theirs = store_image(standalone, size=1 * MiB, tenant_=other_tenant)
    link, _token = services.link_create(image=theirs, actor=None)
    for method, url in (
        ("get", f"/images/{theirs.pk}/download/"),
        ("post", f"/images/{theirs.pk}/download/"),
        ("post", f"/images/{theirs.pk}/download/{link.pk}/revoke/"),
        ("get", f"/images/{theirs.pk}/export/"),
    ):
        assert getattr(owner_client, method)(url).status_code == 404
    assert not DownloadLink.objects.get(pk=link.pk).revoked


def test_api_creates_lists_and_revokes_links(owner, standalone, store_image, other_tenant):
    _t, key = tenant_services.api_token_create(user=owner)
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    image = store_image(standalone, size=2 * MiB)
    response = api.post(f"/api/v1/images/{image.pk}/download-links")
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"url", "expires_at", "id", "file_name"}
    path = urlsplit(body["url"]).path
    assert fetch(path)[0] == 200
    listed = api.get(f"/api/v1/images/{image.pk}/download-links").json()
    assert [item["id"] for item in listed] == [body["id"]] and "url" not in listed[0]
    assert api.delete(f"/api/v1/images/{image.pk}/download-links/{body['id']}").status_code == 204
    assert fetch(path)[0] == 410
    assert api.get(f"/api/v1/images/{image.pk}/download-links").json() == []
    # Another tenant's image and link ids are 404.
    theirs = store_image(standalone, size=1 * MiB, tenant_=other_tenant)
    their_link, _token = services.link_create(image=theirs, actor=None)
    assert api.post(f"/api/v1/images/{theirs.pk}/download-links").status_code == 404
    assert api.delete(f"/api/v1/images/{theirs.pk}/download-links/{their_link.pk}").status_code == 404
    assert api.delete(f"/api/v1/images/{image.pk}/download-links/{their_link.pk}").status_code == 404


def test_unavailable_image_gets_no_link(owner_client, standalone, store_image):
    image = store_image(standalone, size=1 * MiB)
    Image.objects.filter(pk=image.pk).update(status=Image.Status.FAILED)
    assert owner_client.post(f"/images/{image.pk}/download/").status_code == 403
    with pytest.raises(services.DownloadRefused):
        services.link_create(image=Image.objects.get(pk=image.pk), actor=None)


def test_link_log_entries_are_worded_in_each_readers_language(owner, standalone, store_image):
    """A Chinese user's link, its download and its revocation read in English to an English reader."""
    from django.test import RequestFactory
    from django.utils import translation

    image = store_image(standalone, size=1 * MiB)
    with translation.override("zh-hans"):
        link, token = services.link_create(image=image, actor=owner)
        request = RequestFactory().get(services.link_path(link, token), HTTP_RANGE="bytes=0-9")
        services.log_download(link=link, request=request, ranges="bytes=0-9")
        services.link_revoke(link=link, actor=owner)
    entries = OperationLog.objects.filter(target_id=str(image.pk), action__startswith="image.download")
    assert entries.count() == 3
    for entry in entries:
        assert entry.message_code, entry.action
        with translation.override("en"):
            english = entry.display_message
        with translation.override("zh-hans"):
            chinese = entry.display_message
        assert link.filename in english and english != chinese
        assert re.search(r"[a-z]{4}", english.replace(link.filename, "")), english


def test_another_tenants_token_opens_only_its_own_file(owner, standalone, store_image, other_tenant):
    """A token is bound to its link's file: another tenant's token with this tenant's file name (or an
    altered one) is 404, and this tenant's lists never show another tenant's links."""
    ours = store_image(standalone, size=1 * MiB, name="ours")
    theirs = store_image(standalone, size=1 * MiB, name="theirs", tenant_=other_tenant)
    our_link, our_token = services.link_create(image=ours, actor=owner)
    _their_link, their_token = services.link_create(image=theirs, actor=None)
    assert fetch(f"/d/{their_token}/{our_link.filename}")[0] == 404
    assert fetch(f"/d/{our_token}/theirs.qcow2")[0] == 404
    assert fetch(f"/d/{our_token}/{our_link.filename}")[0] == 200
    _t, key = tenant_services.api_token_create(user=owner)
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    assert [item["id"] for item in api.get(f"/api/v1/images/{ours.pk}/download-links").json()] == [
        str(our_link.pk)
    ]


def test_if_range_through_a_link(owner, standalone, store_image):
    """If-Range with the link's ETag or Last-Modified resumes; a stale one gets the whole file."""
    image = store_image(standalone, size=2 * MiB)
    link, token = services.link_create(image=image, actor=owner)
    path = services.link_path(link, token)
    _status, _body, whole = fetch(path)
    etag, modified = whole["ETag"], whole["Last-Modified"]
    data = image.source_path.read_bytes()
    for validator in (etag, modified):
        status, body, _ = fetch(path, RANGE="bytes=1000-", IF_RANGE=validator)
        assert status == 206 and body == data[1000:], validator
    status, body, _ = fetch(path, RANGE="bytes=1000-", IF_RANGE='"an-older-version"')
    assert status == 200 and body == data
    status, _body, _ = fetch(path, IF_NONE_MATCH=etag)
    assert status == 304


def test_chunks_are_read_ahead_at_the_storage_download_concurrency(owner, standalone, store_image):
    """The chunks of a download are read `download_concurrency` at a time, never more (memory bound)."""
    import threading
    import time
    from unittest import mock

    from storage.backends.standalone import StandaloneBackend

    image = store_image(standalone, size=24 * MiB, seed=11)
    link, token = services.link_create(image=image, actor=owner)
    real = StandaloneBackend._read_chunk
    lock, state = threading.Lock(), {"now": 0, "most": 0}

    def slow_read(self, *args, **kwargs):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        try:
            time.sleep(0.02)
            return real(self, *args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    with mock.patch.object(StandaloneBackend, "_read_chunk", slow_read):
        status, body, _ = fetch(services.link_path(link, token))
    assert status == 200 and hashlib.sha256(body).hexdigest() == image.sha256
    assert state["most"] == standalone.download_concurrency == 4


def test_holes_in_the_chunk_store_are_sent_as_zeros(owner, standalone, store_image, tmp_path):
    """A raw image with an all-zero stretch: its chunks there are holes (no data stored), and the link
    sends zeros for them, whole and in a range across a hole's edges."""
    from storage.backends import get_backend

    image = store_image(standalone, size=16 * MiB, fmt="raw")
    raw = image.source_path
    with open(raw, "r+b") as file:  # zero the middle 8 MiB, then store it again
        file.seek(4 * MiB)
        file.write(bytes(8 * MiB))
    backend = get_backend(standalone)
    backend.delete(str(image.pk))
    result = backend.ingest(raw, key=str(image.pk))
    Image.objects.filter(pk=image.pk).update(sha256=result.sha256, md5=result.md5)
    image.refresh_from_db()
    assert backend.load_manifest(str(image.pk))["chunks"].count(None) == 2
    data = raw.read_bytes()
    link, token = services.link_create(image=image, actor=owner)
    path = services.link_path(link, token)
    status, body, _ = fetch(path)
    assert status == 200 and hashlib.sha256(body).hexdigest() == image.sha256
    status, body, _ = fetch(path, RANGE=f"bytes={4 * MiB - 10}-{12 * MiB + 9}")
    assert status == 206 and body == data[4 * MiB - 10 : 12 * MiB + 10]
