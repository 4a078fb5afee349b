"""Tenant isolation over every console URL and API endpoint, found by walking the URL resolver.

Tenant B's objects must be invisible to tenant A's owner everywhere: a URL that takes an id answers 404
(or 405 for a method it does not have) to every method when given B's object, and changes nothing;
a URL without an id never shows B's names. A URL this test cannot fill fails it, so a new URL is
covered as soon as it exists: add a rule to RULES saying which kind of object its parameters name.
"""

import io
import re
import zipfile
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern
from django.utils import timezone

from compute.models import BootCheck, ComputeHost, VirtualMachine
from images.models import DownloadLink, ExportedImage, Image, ImageShare, UploadSession
from storage.models import ImageStorage
from tenants import services
from tenants.models import Membership, OperationLog, ProjectGroup

SECRET = "globex-secret"

# URLs that are not about a tenant's data: Django admin (staff only, its own tests), the RQ dashboard,
# authentication pages, language switching, the health check, the API schema and docs.
# Download links (`d/<token>/<file name>`) need no login: the token is the credential, and their refusals
# (unknown, altered, expired, revoked) are tested in tests/images/downloads/test_links.py.
SKIP = re.compile(r"^(admin/|accounts/|i18n/|healthz|api/v1/schema/|api/v1/docs/|d/)")

# (URL name pattern, parameter name) -> which object of tenant B fills it; SHARED marks platform-wide
# objects every tenant may read (image storages).
SHARED = "shared"
RULES = [
    (r"^images:export_(download|delete)$", "pk", "export"),
    (r"^api-export", "pk", "export"),
    (r"link", "link_pk", "link"),
    (r"^images:", "pk", "image"),
    (r"^api-image", "pk", "image"),
    (r"^api-upload", "pk", "upload"),
    (r"project_group|project-group", "pk", "group"),
    (r"operation_log|operation-log", "pk", "log"),
    (r"^recyclebin:", "pk", "deleted_image"),
    (r"^api-recyclebin", "pk", "deleted_image"),
    (r"^(api-storage|storage:)", "pk", SHARED),
    (r"^openstack-image", "image_id", "image"),
    (r"^openstack-image-member$", "member_id", "member"),
    (r"^openstack-image-tag$", "tag", "tag"),
    (r"^compute:boot_check_(start|panel)$", "pk", "image"),
    (r"^compute:boot_check_(screen|thumbnail)$", "pk", "bootcheck"),
    (r"^(compute:|api-vm)", "pk", "vm"),
]

METHODS = ("get", "post", "put", "patch", "delete")
NOT_FOUND_OR_NOT_ALLOWED = {404, 405}


def _walk(patterns, prefix="", namespace=None):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = pattern.namespace or namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else str(pattern.name)
            route = prefix + str(pattern.pattern)
            converters = dict(getattr(pattern.pattern, "converters", {}) or {})
            if isinstance(pattern.pattern, RegexPattern):
                # re_path (the OpenStack API): its named groups are its parameters.
                converters = {group: "regex" for group in pattern.pattern.regex.groupindex}
                route = prefix + re.sub(r"\^|\$|/\?(?=\$|$)", "", str(pattern.pattern))
            yield route, name, converters


def _routes():
    return [r for r in _walk(get_resolver().url_patterns) if not SKIP.match(r[0])]


def _rule(name: str, kwarg: str):
    for name_pattern, parameter, kind in RULES:
        if re.search(name_pattern, name) and parameter == kwarg:
            return kind
    return None


def _fill(route: str, values: dict) -> str:
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), route)
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)


def _objects(tenant, marker, tmp_path):
    group = services.project_group_create(tenant=tenant, name=f"{marker}-group")
    image = Image.objects.create(
        tenant=tenant, name=f"{marker}-image", disk_format="qcow2", status="available", project_group=group
    )
    uploading = Image.objects.create(
        tenant=tenant, name=f"{marker}-uploading", disk_format="raw", status="uploading"
    )
    upload = UploadSession.objects.create(image=uploading, length=1024)
    deleted = Image.objects.create(
        tenant=tenant, name=f"{marker}-deleted", disk_format="qcow2", status="deleted"
    )
    log = services.log(action="image.update", tenant=tenant, target=image, message=f"{marker}-log")
    # A platform-wide host both tenants' VMs run on; its URI answers nothing, so no libvirt is needed.
    host, _created = ComputeHost.objects.get_or_create(
        name="shared-host", defaults={"uri": "qemu+tcp://127.0.0.1:1/system", "state": "connected"}
    )
    vm = VirtualMachine.objects.create(
        tenant=tenant,
        name=f"{marker}-vm",
        image=image,
        host=host,
        domain_name=f"ic-{marker}",
        state="running",
    )
    check = BootCheck.objects.create(
        tenant=tenant, image=image, host=host, state="passed", screenshot=b"png", thumbnail=b"png"
    )
    storage = ImageStorage.objects.get_or_create(
        name="isolation-store",
        defaults={"kind": ImageStorage.Kind.STANDALONE, "mount_path": "/tmp/isolation-store"},
    )[0]
    export = ExportedImage.objects.create(
        tenant=tenant,
        image=image,
        storage=storage,
        format="vmdk",
        key=f"{marker}.vmdk",
        status="ready",
        size=1,
    )
    link = DownloadLink.objects.create(
        tenant=tenant,
        image=image,
        token_hash=marker.ljust(64, "0")[:64],
        filename=f"{marker}-image.qcow2",
        expires_at=timezone.now() + timedelta(hours=1),
    )
    return {
        "vm": vm.pk,
        "bootcheck": check.pk,
        "export": export.pk,
        "link": link.pk,
        "image": image.pk,
        "upload": upload.pk,
        "group": group.pk,
        "log": log.pk,
        "deleted_image": deleted.pk,
        "tag": "blue",
    }


def _body(response) -> str:
    if getattr(response, "streaming", False):
        content = b"".join(response.streaming_content)
    else:
        content = response.content
    if content[:2] == b"PK":  # an Excel file: read the text of every part
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return " ".join(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
    return content.decode("utf-8", "replace")


@pytest.fixture
def world(tenant, other_tenant, owner, tmp_path):
    mine = _objects(tenant, "acme-own", tmp_path)
    theirs = _objects(other_tenant, SECRET, tmp_path)
    # OpenStack image members: the tenant's own image has one (the other tenant, asked); theirs has none.
    ImageShare.objects.create(image_id=mine["image"], tenant=other_tenant)
    mine["member"], theirs["member"] = other_tenant.pk, tenant.pk
    _token, key = services.api_token_create(user=owner)
    console = Client()
    console.force_login(owner)
    return {
        "mine": mine,
        "theirs": theirs,
        "console": console,
        "api": Client(HTTP_AUTHORIZATION=f"Token {key}"),
        "openstack": Client(HTTP_X_AUTH_TOKEN=key),
    }


def _client(world, route):
    if route.startswith("openstack/"):
        return world["openstack"]
    return world["api"] if route.startswith("api/") else world["console"]


def _request(client, method, url):
    headers = {"HTTP_TUS_RESUMABLE": "1.0.0"} if "/uploads/" in url else {}
    if method == "patch" and "/uploads/" in url:
        return client.patch(
            url, b"x", content_type="application/offset+octet-stream", HTTP_UPLOAD_OFFSET="0", **headers
        )
    if method == "patch" and url.startswith("/openstack/"):
        body = b'[{"op": "replace", "path": "/name", "value": "stolen"}]'
        return client.patch(url, body, content_type="application/openstack-images-v2.1-json-patch")
    if method in ("put", "patch", "post") and url.startswith("/openstack/"):
        return client.generic(
            method.upper(), url, b'{"name": "stolen", "member": "1"}', content_type="application/json"
        )
    if method in ("put", "patch") and url.startswith("/api/"):
        return client.generic(
            method.upper(), url, b'{"name": "stolen"}', content_type="application/json", **headers
        )
    if method == "post":
        return client.post(url, {"name": "stolen", "enabled": "0"}, **headers)
    return getattr(client, method)(url, **headers)


def test_every_url_with_an_id_is_404_for_another_tenants_object(world):
    unknown, leaks, checked = [], [], 0
    for route, name, converters in _routes():
        if not converters:
            continue
        kinds = {kwarg: _rule(name, kwarg) for kwarg in converters}
        if None in kinds.values():
            unknown.append(f"{route} ({name}): {converters}")
            continue
        if SHARED in kinds.values():
            continue
        client = _client(world, route)
        theirs = _fill("/" + route, {k: world["theirs"][v] for k, v in kinds.items()})
        mine = _fill("/" + route, {k: world["mine"][v] for k, v in kinds.items()})
        for method in METHODS:
            status = _request(client, method, theirs).status_code
            if status not in NOT_FOUND_OR_NOT_ALLOWED:
                leaks.append(f"{method.upper()} {theirs} ({name}) -> {status}")
        # The same URL with the tenant's own object must exist, or the 404s above prove nothing.
        own = [
            getattr(client, m)(
                mine, **({"HTTP_TUS_RESUMABLE": "1.0.0"} if "/uploads/" in mine else {})
            ).status_code
            for m in ("get", "head")
        ]
        if all(code == 404 for code in own):
            leaks.append(f"GET {mine} ({name}) is 404 for the tenant's own object too")
        checked += 1
    assert not unknown, "Say in RULES which object these URLs take:\n" + "\n".join(unknown)
    assert not leaks, "\n".join(leaks)
    assert checked >= 10


def test_nothing_of_another_tenant_changed(world, other_tenant):
    test_every_url_with_an_id_is_404_for_another_tenants_object(world)
    theirs = world["theirs"]
    image = Image.objects.get(pk=theirs["image"])
    assert (image.name, image.status, image.enabled, image.sharing) == (
        f"{SECRET}-image",
        "available",
        True,
        "private",
    )
    assert ProjectGroup.objects.get(pk=theirs["group"]).name == f"{SECRET}-group"
    assert OperationLog.objects.filter(pk=theirs["log"]).exists()
    upload = UploadSession.objects.get(pk=theirs["upload"])
    assert (upload.offset, upload.image.status) == (0, "uploading")
    assert Image.objects.get(pk=theirs["deleted_image"]).status == "deleted"
    assert VirtualMachine.objects.get(pk=theirs["vm"]).name == f"{SECRET}-vm"
    assert ExportedImage.objects.filter(pk=theirs["export"], status="ready").exists()
    assert DownloadLink.objects.get(pk=theirs["link"]).revoked_at is None


def test_no_page_or_endpoint_without_an_id_shows_another_tenants_data(world, other_tenant):
    leaks, checked = [], 0
    theirs = world["theirs"]
    for route, name, converters in _routes():
        if converters:
            continue
        client = _client(world, route)
        url = "/" + route
        for query in (
            "",
            "?q=image",
            "?page_size=100&status=available",
            f"?ids={theirs['image']}&ids={theirs['deleted_image']}",
        ):
            response = client.get(url + query)
            if SECRET in _body(response):
                leaks.append(f"GET {url}{query} ({name}) shows {SECRET}")
        # Changes aimed at the other tenant's objects through id lists in the body.
        response = client.post(
            url,
            {"ids": [theirs["image"]], "image_id": theirs["image"], "tenant": other_tenant.pk, "next": "/"},
        )
        if SECRET in _body(response):
            leaks.append(f"POST {url} ({name}) shows {SECRET}")
        checked += 1
    assert not leaks, "\n".join(leaks)
    assert checked >= 10
    image = Image.objects.get(pk=theirs["image"])
    assert image.status == "available"
    # Still working in its own tenant after trying to switch into the other one.
    assert SECRET not in world["console"].get("/images/").content.decode()


@pytest.mark.parametrize("role", ["subaccount", "manager"])
def test_sub_accounts_are_held_to_the_same_walls(world, role, request, tenant):
    user = request.getfixturevalue(role)
    assert Membership.objects.filter(user=user, tenant=tenant).exists()
    client = Client()
    client.force_login(user)
    theirs = world["theirs"]
    for route, name, converters in _routes():
        if not converters or route.startswith(("api/", "openstack/")):
            continue
        kinds = {kwarg: _rule(name, kwarg) for kwarg in converters}
        if None in kinds.values() or SHARED in kinds.values():
            continue
        url = _fill("/" + route, {k: theirs[v] for k, v in kinds.items()})
        for method in ("get", "post"):
            assert _request(client, method, url).status_code in NOT_FOUND_OR_NOT_ALLOWED, (method, url)
