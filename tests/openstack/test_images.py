"""Images through the Image API v2: create, upload through the import pipeline, show, list, JSON-patch,
download (Content-MD5, Range), tags, deactivate/reactivate, protected, delete."""

import hashlib
import json

import django_rq
import pytest

from images.models import Image
from tenants.models import OperationLog

from .conftest import PATCH, V2, MiB


@pytest.fixture
def upload(glance, disks, run_jobs, django_capture_on_commit_callbacks):
    """Create an image and PUT a qcow2 file into it; returns (image id, the file's bytes)."""

    def run(name="cirros", client=None, fmt="qcow2", **extra):
        client = client or glance
        path = disks.convert(disks.raw(size=4 * MiB), "qcow2") if fmt == "qcow2" else disks.raw(size=2 * MiB)
        body = {"name": name, "disk_format": fmt, "container_format": "bare", **extra}
        created = client.post(f"{V2}/images", json.dumps(body), content_type="application/json")
        assert created.status_code == 201, created.content
        image_id = created.json()["id"]
        data = path.read_bytes()
        with django_capture_on_commit_callbacks(execute=True):
            response = client.put(
                f"{V2}/images/{image_id}/file", data, content_type="application/octet-stream"
            )
        assert response.status_code == 204, response.content
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
        return image_id, data

    return run


def test_create_answers_a_queued_image_in_glance_shape(glance, owner):
    response = glance.post(
        f"{V2}/images",
        json.dumps(
            {
                "name": "cirros",
                "disk_format": "qcow2",
                "container_format": "bare",
                "os_distro": "cirros",
                "min_disk": 1,
                "tags": ["a"],
            }
        ),
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued"
    assert body["checksum"] is None and body["size"] is None
    assert body["os_distro"] == "cirros" and body["min_disk"] == 1 and body["tags"] == ["a"]
    assert body["self"] == f"/v2/images/{body['id']}" and body["file"] == f"/v2/images/{body['id']}/file"
    image = Image.objects.get(pk=body["id"])
    assert image.properties == {"os_distro": "cirros"} and image.owner == owner
    assert OperationLog.objects.filter(action="image.import", target_id=body["id"]).exists()


def test_upload_goes_through_the_pipeline_and_downloads_back(glance, upload):
    image_id, data = upload()
    shown = glance.get(f"{V2}/images/{image_id}").json()
    assert shown["status"] == "active"
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha256" and shown["os_hash_value"] == hashlib.sha256(data).hexdigest()
    assert shown["size"] == len(data) and shown["virtual_size"] == 4 * MiB
    response = glance.get(f"{V2}/images/{image_id}/file")
    assert response.status_code == 200
    assert response["Content-MD5"] == hashlib.md5(data).hexdigest()
    assert b"".join(response.streaming_content) == data
    ranged = glance.get(f"{V2}/images/{image_id}/file", HTTP_RANGE="bytes=100-1099")
    assert ranged.status_code == 206
    assert ranged["Content-Range"] == f"bytes 100-1099/{len(data)}"
    assert b"".join(ranged.streaming_content) == data[100:1100]
    tail = glance.get(f"{V2}/images/{image_id}/file", HTTP_RANGE="bytes=-10")
    assert b"".join(tail.streaming_content) == data[-10:]
    assert glance.get(f"{V2}/images/{image_id}/file", HTTP_RANGE=f"bytes={len(data)}-").status_code == 416
    # Several ranges: one multipart/byteranges answer, as on the console's download links.
    several = glance.get(f"{V2}/images/{image_id}/file", HTTP_RANGE="bytes=0-9,20-29")
    assert several.status_code == 206 and several["Content-Type"].startswith("multipart/byteranges")
    body = b"".join(several.streaming_content)
    assert data[0:10] in body and data[20:30] in body
    # The data goes in once.
    assert (
        glance.put(f"{V2}/images/{image_id}/file", b"x", content_type="application/octet-stream").status_code
        == 409
    )


def test_a_hostile_file_is_refused_and_the_image_killed(
    glance, disks, django_capture_on_commit_callbacks, run_jobs
):
    from ..images.imports.conftest import qemu_img

    path = disks.root / "backed.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(path), "1M")
    image_id = glance.post(
        f"{V2}/images",
        json.dumps({"name": "evil", "disk_format": "qcow2", "container_format": "bare"}),
        content_type="application/json",
    ).json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.put(
            f"{V2}/images/{image_id}/file", path.read_bytes(), content_type="application/octet-stream"
        )
        run_jobs()
    assert response.status_code == 400 or glance.get(f"{V2}/images/{image_id}").json()["status"] == "killed"
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "killed"
    assert "backing file" in Image.objects.get(pk=image_id).error


def test_json_patch_changes_name_tags_protected_min_and_properties(glance, upload):
    image_id, _data = upload()
    ops = [
        {"op": "replace", "path": "/name", "value": "cirros-0.6"},
        {"op": "add", "path": "/tags", "value": ["x", "y"]},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "replace", "path": "/min_ram", "value": 512},
        {"op": "add", "path": "/hw_disk_bus", "value": "virtio"},
    ]
    response = glance.patch(f"{V2}/images/{image_id}", json.dumps(ops), content_type=PATCH)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["tags"], body["protected"], body["min_ram"], body["hw_disk_bus"]) == (
        "cirros-0.6",
        ["x", "y"],
        True,
        512,
        "virtio",
    )
    image = Image.objects.get(pk=image_id)
    assert image.labels == ["x", "y"] and image.properties == {"hw_disk_bus": "virtio"}
    # Protected: no delete.
    assert glance.delete(f"{V2}/images/{image_id}").status_code == 403
    remove = [
        {"op": "remove", "path": "/hw_disk_bus"},
        {"op": "replace", "path": "/protected", "value": False},
    ]
    assert glance.patch(f"{V2}/images/{image_id}", json.dumps(remove), content_type=PATCH).status_code == 200
    assert Image.objects.get(pk=image_id).properties == {}
    read_only = [{"op": "replace", "path": "/size", "value": 1}]
    assert (
        glance.patch(f"{V2}/images/{image_id}", json.dumps(read_only), content_type=PATCH).status_code == 403
    )
    bad_name = [{"op": "replace", "path": "/name", "value": "a/b"}]
    assert (
        glance.patch(f"{V2}/images/{image_id}", json.dumps(bad_name), content_type=PATCH).status_code == 400
    )
    assert glance.patch(f"{V2}/images/{image_id}", "[]", content_type="application/json").status_code == 415
    assert glance.delete(f"{V2}/images/{image_id}").status_code == 204
    assert glance.get(f"{V2}/images/{image_id}").status_code == 404


def test_tags_and_deactivate(glance, upload):
    image_id, _data = upload()
    assert glance.put(f"{V2}/images/{image_id}/tags/blue").status_code == 204
    assert glance.get(f"{V2}/images/{image_id}").json()["tags"] == ["blue"]
    assert glance.delete(f"{V2}/images/{image_id}/tags/blue").status_code == 204
    assert glance.delete(f"{V2}/images/{image_id}/tags/blue").status_code == 404
    assert glance.post(f"{V2}/images/{image_id}/actions/deactivate").status_code == 204
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "deactivated"
    assert not Image.objects.get(pk=image_id).enabled
    assert glance.get(f"{V2}/images/{image_id}/file").status_code == 403
    assert glance.post(f"{V2}/images/{image_id}/actions/reactivate").status_code == 204
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "active"


def test_list_filters_sorting_and_paging(glance, upload):
    ids = [upload(name=f"img-{n}")[0] for n in range(3)]
    glance.put(f"{V2}/images/{ids[1]}/tags/gold")
    listed = glance.get(f"{V2}/images").json()
    assert [i["id"] for i in listed["images"]] == ids[::-1]
    assert listed["first"] == "/v2/images" and listed["schema"] == "/v2/schemas/images"
    page = glance.get(f"{V2}/images?limit=2&sort_key=name&sort_dir=asc").json()
    assert [i["name"] for i in page["images"]] == ["img-0", "img-1"]
    assert "marker=" in page["next"]
    second = glance.get("/openstack/image" + page["next"]).json()
    assert [i["name"] for i in second["images"]] == ["img-2"] and "next" not in second
    assert [i["id"] for i in glance.get(f"{V2}/images?tag=gold").json()["images"]] == [ids[1]]
    assert [i["name"] for i in glance.get(f"{V2}/images?sort=name:desc").json()["images"]][0] == "img-2"
    assert glance.get(f"{V2}/images?name=img-1").json()["images"][0]["id"] == ids[1]
    assert len(glance.get(f"{V2}/images?status=active").json()["images"]) == 3
    assert glance.get(f"{V2}/images?status=queued").json()["images"] == []
    since = glance.get(f"{V2}/images/{ids[1]}").json()["updated_at"]
    assert ids[1] in [i["id"] for i in glance.get(f"{V2}/images?changes-since={since}").json()["images"]]
    assert glance.get(f"{V2}/images?sort_key=bogus").status_code == 400
    assert glance.get(f"{V2}/images?limit=x").status_code == 400
    assert glance.get(f"{V2}/images?marker=nope").status_code == 400


def test_view_only_sub_account_lists_and_downloads_but_cannot_change(glance, viewer_glance, upload):
    image_id, data = upload()
    assert [i["id"] for i in viewer_glance.get(f"{V2}/images").json()["images"]] == [image_id]
    assert b"".join(viewer_glance.get(f"{V2}/images/{image_id}/file").streaming_content) == data
    create = viewer_glance.post(
        f"{V2}/images", json.dumps({"name": "x", "disk_format": "raw"}), content_type="application/json"
    )
    assert create.status_code == 403
    ops = json.dumps([{"op": "replace", "path": "/name", "value": "y"}])
    assert viewer_glance.patch(f"{V2}/images/{image_id}", ops, content_type=PATCH).status_code == 403
    assert viewer_glance.delete(f"{V2}/images/{image_id}").status_code == 403
    assert viewer_glance.put(f"{V2}/images/{image_id}/tags/t").status_code == 403
    assert viewer_glance.post(f"{V2}/images/{image_id}/actions/deactivate").status_code == 403
    member = json.dumps({"member": "globex"})
    assert (
        viewer_glance.post(
            f"{V2}/images/{image_id}/members", member, content_type="application/json"
        ).status_code
        == 403
    )
    assert Image.objects.get(pk=image_id).name == "cirros"
    # Nor send data to a queued image of the tenant, by any of the three ways.
    queued = glance.post(f"{V2}/images", json.dumps({"name": "q", "disk_format": "raw"}),
                         content_type="application/json").json()["id"]  # fmt: skip
    for url in (f"{V2}/images/{queued}/file", f"{V2}/images/{queued}/stage"):
        assert viewer_glance.put(url, data, content_type="application/octet-stream").status_code == 403, url
    web = json.dumps({"method": {"name": "web-download", "uri": "http://example.com/x.raw"}})
    assert (
        viewer_glance.post(f"{V2}/images/{queued}/import", web, content_type="application/json").status_code
        == 403
    )
    assert glance.get(f"{V2}/images/{queued}").json()["status"] == "queued"


def test_another_tenants_images_are_invisible(glance, other_glance, upload):
    image_id, _data = upload()
    assert other_glance.get(f"{V2}/images").json()["images"] == []
    for method, url in [
        ("get", f"{V2}/images/{image_id}"),
        ("get", f"{V2}/images/{image_id}/file"),
        ("delete", f"{V2}/images/{image_id}"),
        ("put", f"{V2}/images/{image_id}/tags/t"),
        ("post", f"{V2}/images/{image_id}/actions/deactivate"),
    ]:
        assert getattr(other_glance, method)(url).status_code == 404, (method, url)
    ops = json.dumps([{"op": "replace", "path": "/name", "value": "stolen"}])
    assert other_glance.patch(f"{V2}/images/{image_id}", ops, content_type=PATCH).status_code == 404


def test_delete_of_a_queued_image(glance):
    image_id = glance.post(
        f"{V2}/images", json.dumps({"name": "q", "disk_format": "raw"}), content_type="application/json"
    ).json()["id"]
    assert glance.delete(f"{V2}/images/{image_id}").status_code == 204
    assert glance.get(f"{V2}/images/{image_id}").status_code == 404


def test_errors_have_glance_shape(glance):
    missing = f"{V2}/images/00000000-0000-0000-0000-000000000000"
    response = glance.get(missing, HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json()["code"] == "404 Not Found"
    # Without asking for JSON: webob's plain text, as Glance answers.
    text = glance.get(missing)
    assert text["Content-Type"].startswith("text/plain") and text.content.startswith(b"404 Not Found\n\n")
    assert (
        glance.post(
            f"{V2}/images", json.dumps({"name": "x", "disk_format": "aki"}), content_type="application/json"
        ).status_code
        == 400
    )


def test_properties_and_protection_are_shown_in_the_console(glance, upload, owner_client):
    image_id, _data = upload()
    ops = [{"op": "add", "path": "/os_distro", "value": "<b>ubuntu</b>"}, {"op": "replace", "path": "/protected", "value": True},
           {"op": "replace", "path": "/min_disk", "value": 3}]  # fmt: skip
    glance.patch(f"{V2}/images/{image_id}", json.dumps(ops), content_type=PATCH)
    page = owner_client.get(f"/images/{image_id}/").content.decode()
    assert "os_distro" in page and "&lt;b&gt;ubuntu&lt;/b&gt;" in page
    assert 'data-testid="image-protected"' in page and "3 GB disk" in page


def chunked_put(client, url, data):
    """A PUT as gunicorn hands over glanceclient's chunked upload: no Content-Length, the decoded body."""
    import io

    return client.generic(
        "PUT", url, b"", HTTP_TRANSFER_ENCODING="chunked", **{"wsgi.input": io.BytesIO(data)}
    )


def test_chunked_upload_without_a_length(glance, disks, run_jobs, django_capture_on_commit_callbacks):
    data = disks.convert(disks.raw(size=4 * MiB), "qcow2").read_bytes()
    image_id = glance.post(f"{V2}/images", json.dumps({"name": "chunked", "disk_format": "qcow2"}),
                           content_type="application/json").json()["id"]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        assert chunked_put(glance, f"{V2}/images/{image_id}/file", data).status_code == 204
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    shown = glance.get(f"{V2}/images/{image_id}").json()
    assert shown["status"] == "active" and shown["size"] == len(data)
    assert shown["os_hash_value"] == hashlib.sha256(data).hexdigest()


def test_chunked_upload_is_cut_off_at_the_quota(
    glance, tenant, disks, run_jobs, django_capture_on_commit_callbacks
):
    tenant.quota.max_bytes = 1 * MiB
    tenant.quota.save()
    data = disks.convert(disks.raw(size=12 * MiB), "qcow2").read_bytes()
    assert len(data) > 5 * MiB
    image_id = glance.post(f"{V2}/images", json.dumps({"name": "big", "disk_format": "qcow2"}),
                           content_type="application/json").json()["id"]  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = chunked_put(glance, f"{V2}/images/{image_id}/file", data)
    with django_capture_on_commit_callbacks(execute=True):
        run_jobs()
    assert response.status_code == 413
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "killed"
    assert "quota" in Image.objects.get(pk=image_id).error
    assert not Image.objects.get(pk=image_id).replicas.exists()


def test_an_ova_container_is_imported(glance, disks, run_jobs, django_capture_on_commit_callbacks):
    vmdk = disks.convert(disks.raw(size=2 * MiB), "vmdk", None, "-o", "subformat=streamOptimized")
    ova = disks.ova(vmdk)
    body = {"name": "appliance", "disk_format": "vmdk", "container_format": "ova"}
    created = glance.post(f"{V2}/images", json.dumps(body), content_type="application/json").json()
    assert created["container_format"] == "ova"
    with django_capture_on_commit_callbacks(execute=True):
        response = glance.put(f"{V2}/images/{created['id']}/file", ova.read_bytes(),
                              content_type="application/octet-stream")  # fmt: skip
    assert response.status_code == 204, response.content
    for _round in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    shown = glance.get(f"{V2}/images/{created['id']}").json()
    assert shown["status"] == "active", Image.objects.get(pk=created["id"]).error
    assert (shown["container_format"], shown["disk_format"]) == ("ova", "qcow2")
    assert [i["id"] for i in glance.get(f"{V2}/images?container_format=ova").json()["images"]] == [
        created["id"]
    ]


def test_values_of_the_wrong_type_are_400_not_500(glance):
    image_id = glance.post(f"{V2}/images", json.dumps({"name": "typed", "disk_format": "raw"}),
                           content_type="application/json").json()["id"]  # fmt: skip
    for key, value in [("name", 5), ("name", None), ("name", ["a"]), ("tags", "a,b"), ("tags", [5]),
                       ("visibility", ["shared"]), ("min_ram", "x"), ("protected", "yes")]:  # fmt: skip
        ops = json.dumps([{"op": "replace", "path": f"/{key}", "value": value}])
        assert glance.patch(f"{V2}/images/{image_id}", ops, content_type=PATCH).status_code == 400, (
            key,
            value,
        )
    image = Image.objects.get(pk=image_id)
    assert (image.name, image.labels, image.min_ram, image.protected) == ("typed", [], 0, False)
    for body in ({"name": 5}, {"name": "x", "tags": "a,b"}, {"name": "x", "tags": [1]}):
        response = glance.post(
            f"{V2}/images", json.dumps({"disk_format": "raw", **body}), content_type="application/json"
        )
        assert response.status_code == 400, body
    assert Image.objects.count() == 1


def test_a_sub_account_scoped_to_a_project_group_sees_only_its_images(tenant, make_user, standalone):
    from tenants import services
    from tenants.models import Membership

    from .conftest import token_client

    mine = services.project_group_create(tenant=tenant, name="mine")
    theirs = services.project_group_create(tenant=tenant, name="theirs")
    user = make_user("acme-scoped")
    services.membership_add(
        tenant=tenant, user=user, permission=Membership.Permission.MANAGE, project_groups=[mine]
    )
    seen = Image.objects.create(tenant=tenant, name="seen", disk_format="qcow2", status="available", stage="",
                                project_group=mine)  # fmt: skip
    hidden = Image.objects.create(tenant=tenant, name="hidden", disk_format="qcow2", status="available", stage="",
                                  project_group=theirs)  # fmt: skip
    client = token_client(user)
    assert [i["id"] for i in client.get(f"{V2}/images").json()["images"]] == [str(seen.pk)]
    assert client.get(f"{V2}/images/{seen.pk}").status_code == 200
    assert client.get(f"{V2}/images/{hidden.pk}").status_code == 404
    ops = json.dumps([{"op": "replace", "path": "/name", "value": "x"}])
    assert client.patch(f"{V2}/images/{hidden.pk}", ops, content_type=PATCH).status_code == 404
    assert client.delete(f"{V2}/images/{hidden.pk}").status_code == 404
    assert Image.objects.get(pk=hidden.pk).name == "hidden"


def test_formats_cannot_be_patched_even_while_queued(glance):
    image_id = glance.post(f"{V2}/images", json.dumps({"name": "fmt", "disk_format": "raw"}),
                           content_type="application/json").json()["id"]  # fmt: skip
    for key, value in (("disk_format", "qcow2"), ("container_format", "ova")):
        ops = json.dumps([{"op": "replace", "path": f"/{key}", "value": value}])
        response = glance.patch(
            f"{V2}/images/{image_id}", ops, content_type=PATCH, HTTP_ACCEPT="application/json"
        )
        assert response.status_code == 403 and "Create the image again" in response.json()["message"]
    same = json.dumps([{"op": "replace", "path": "/disk_format", "value": "raw"}])
    assert glance.patch(f"{V2}/images/{image_id}", same, content_type=PATCH).status_code == 200
    assert Image.objects.get(pk=image_id).disk_format == "raw"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_image_is_active_when_its_upload_answers(glance, disks, rq_redis, chunked):
    """As with Glance, whose PUT answers once the image is active: no job stands between the 204 and
    `active` for an image stored as it arrived (glance image-upload, then at once server create)."""
    data = disks.convert(disks.raw(size=4 * MiB), "qcow2").read_bytes()
    image_id = glance.post(f"{V2}/images", json.dumps({"name": "at-once", "disk_format": "qcow2"}),
                           content_type="application/json").json()["id"]  # fmt: skip
    url = f"{V2}/images/{image_id}/file"
    if chunked:
        response = chunked_put(glance, url, data)
    else:
        response = glance.put(url, data, content_type="application/octet-stream")
    assert response.status_code == 204, response.content
    shown = glance.get(f"{V2}/images/{image_id}").json()
    assert shown["status"] == "active"
    assert shown["os_hash_value"] == hashlib.sha256(data).hexdigest()
    assert django_rq.get_queue("imports").count == 0


def test_a_file_the_finish_refuses_is_a_400_and_the_image_killed(glance, disks):
    """A virtual size past the console's largest (found by qemu-img info after the last byte) is refused
    in the upload's answer, as Glance refuses a file that fails its format checks."""
    from ..images.imports.conftest import qemu_img

    path = disks.root / "huge.qcow2"
    qemu_img("create", "-f", "qcow2", str(path), "600G")
    image_id = glance.post(f"{V2}/images", json.dumps({"name": "huge", "disk_format": "qcow2"}),
                           content_type="application/json").json()["id"]  # fmt: skip
    response = glance.put(
        f"{V2}/images/{image_id}/file", path.read_bytes(), content_type="application/octet-stream"
    )
    assert response.status_code == 400, response.content
    assert "virtual size" in response.content.decode()
    assert glance.get(f"{V2}/images/{image_id}").json()["status"] == "killed"
