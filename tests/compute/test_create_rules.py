"""The Create VM wizard and API refuse what cannot work, next to the field, before anything reaches a
host (no libvirt is needed: the host's URI answers nothing and no job runs)."""

import pytest
from django.test import Client

from compute.models import ComputeHost, VirtualMachine
from images.models import Image
from tenants import services
from tenants.models import Quota

GB = 1000**3


@pytest.fixture
def host(db):
    return ComputeHost.objects.create(
        name="kvm-1",
        uri="qemu+tcp://127.0.0.1:1/system",
        state="connected",
        domain_type="qemu",
        arch="x86_64",
        guest_archs=["i686", "x86_64"],
        uefi=True,
        free_memory_bytes=8 * 1024**3,
    )


def _image(tenant, **fields):
    values = {
        "name": "debian-12",
        "disk_format": "qcow2",
        "status": "available",
        "size": 300 * 1024**2,
        "virtual_size": 3 * GB,
        "sha256": "a" * 64,
        "cloud_init": True,
        **fields,
    }
    return Image.objects.create(tenant=tenant, **values)


def _post(client, image, **data):
    values = {
        "image": image.pk,
        "name": "web-1",
        "vcpus": 1,
        "memory_mib": 512,
        "disk_gb": 3,
        "host": "",
        "network": "",
    }
    values.update(data)
    return client.post("/vms/create/", values)


def test_the_wizard_opens_with_the_image_chosen_and_creates_a_vm(owner_client, tenant, host, rq_redis):
    image = _image(tenant)
    page = owner_client.get(f"/vms/create/?image={image.pk}").content.decode()
    assert "debian-12" in page and 'name="admin_password"' in page
    response = _post(owner_client, image, admin_password="long-enough-1")
    vm = VirtualMachine.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/vms/{vm.pk}/"
    assert (vm.state, vm.host, vm.image, vm.disk_gb) == ("creating", host, image, 3)
    detail = owner_client.get(f"/vms/{vm.pk}/").content.decode()
    assert "web-1" in detail and "Creating" in detail
    listing = owner_client.get("/vms/").content.decode()
    assert "web-1" in listing and "hx-get" in listing  # the creating row polls itself


def test_the_image_row_and_page_offer_create_vm(owner_client, subaccount_client, tenant, host):
    image = _image(tenant)
    link = f"/vms/create/?image={image.pk}"
    assert link in owner_client.get("/images/").content.decode()
    assert link in owner_client.get(f"/images/{image.pk}/").content.decode()
    # A member who may only view is not offered it.
    assert link not in subaccount_client.get("/images/").content.decode()
    assert subaccount_client.get(link).status_code == 403


@pytest.mark.parametrize(
    ("fields", "data", "field", "words"),
    [
        ({}, {"disk_gb": 2}, "disk_gb", "at least the image"),
        ({}, {"name": "no spaces"}, "name", "letters, digits and hyphens"),
        ({"cloud_init": False}, {"admin_password": "long-enough-1"}, None, None),
        ({"encrypted": True}, {"admin_password": "long-enough-1"}, None, None),
    ],
)
def test_the_wizard_refuses_with_a_message_next_to_the_field(
    owner_client, tenant, host, fields, data, field, words
):
    image = _image(tenant, **fields)
    response = _post(owner_client, image, **data)
    page = response.content.decode()
    if field is None:
        # The password field is disabled: the image cannot take it, and the page says why; the VM is
        # created without it.
        assert "cannot be applied" in page or "cannot be changed" in page or response.status_code == 302
        if response.status_code == 302:
            assert VirtualMachine.objects.get().password_applied is False
        return
    assert response.status_code == 400
    assert f'data-error-for="{field}"' in page and words in page.lower()
    assert not VirtualMachine.objects.exists()


def test_wizard_notes_for_images_without_cloud_init_or_encrypted(owner_client, tenant, host):
    plain = _image(tenant, name="plain", cloud_init=False)
    page = owner_client.get(f"/vms/create/?image={plain.pk}").content.decode()
    assert 'data-testid="no-cloud-init-note"' in page
    encrypted = _image(tenant, name="locked", encrypted=True, sha256="b" * 64)
    page = owner_client.get(f"/vms/create/?image={encrypted.pk}").content.decode()
    assert 'data-testid="encrypted-note"' in page and "key cannot be changed" in page


def test_an_architecture_the_host_cannot_run_is_refused_naming_both(owner_client, tenant, host):
    image = _image(tenant, architecture="aarch64", boot_mode="uefi")
    page = _post(owner_client, image, host=host.pk).content.decode()
    assert "aarch64" in page and "kvm-1" in page and "x86_64" in page
    assert not VirtualMachine.objects.exists()


def test_disabled_and_unavailable_images_cannot_be_used(owner_client, tenant, host):
    disabled = _image(tenant, enabled=False)
    assert owner_client.get(f"/vms/create/?image={disabled.pk}").status_code == 404
    failed = _image(tenant, name="broken", status="failed", sha256="c" * 64)
    assert _post(owner_client, failed).status_code == 404


def test_no_connected_host(owner_client, tenant, host):
    ComputeHost.objects.filter(pk=host.pk).update(state="disconnected")
    page = _post(owner_client, _image(tenant)).content.decode()
    assert "No compute host is enabled and connected" in page


def test_tenant_quotas_for_vcpus_memory_and_vm_count(owner_client, tenant, host, rq_redis):
    image = _image(tenant)
    services.quota_update(tenant=tenant, max_images=None, max_bytes=None)
    Quota.objects.filter(tenant=tenant).update(max_vms=1, max_vcpus=2, max_memory_mib=1024)
    assert "vCPUs" in _post(owner_client, image, vcpus=3).content.decode()
    assert "1024 MiB" in _post(owner_client, image, memory_mib=2048).content.decode()
    assert _post(owner_client, image).status_code == 302
    page = _post(owner_client, image, name="web-2").content.decode()
    assert "allows 1 VMs" in page
    assert VirtualMachine.objects.count() == 1


def test_api_create_list_and_hosts(tenant, owner, host, rq_redis):
    _token, key = services.api_token_create(user=owner)
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    image = _image(tenant)
    hosts = api.get("/api/v1/compute-hosts/").json()
    assert [(h["id"], h["name"], h["state"]) for h in hosts] == [(host.pk, "kvm-1", "connected")]
    response = api.post(
        "/api/v1/vms/",
        {"name": "api-1", "image": str(image.pk), "vcpus": 1, "memory_mib": 256},
        content_type="application/json",
    )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "creating" and body["host"] == host.pk and body["disk_gb"] == 3
    assert api.get("/api/v1/vms/").json()["results"][0]["name"] == "api-1"
    refused = api.post(
        "/api/v1/vms/",
        {"name": "api-2", "image": str(image.pk), "disk_gb": 1},
        content_type="application/json",
    )
    assert refused.status_code == 400 and "disk_gb" in refused.json()
    # Another tenant's image cannot be used.
    other = services.tenant_create(name="initech")
    theirs = _image(other, name="secret", sha256="d" * 64)
    refused = api.post(
        "/api/v1/vms/", {"name": "api-3", "image": str(theirs.pk)}, content_type="application/json"
    )
    assert refused.status_code == 400 and "image" in refused.json()
    # A VM being created cannot be deleted yet.
    vm_id = body["id"]
    assert api.delete(f"/api/v1/vms/{vm_id}/").status_code == 409


def test_the_list_filters_by_state_name_and_project_group(owner_client, tenant, host):
    group = services.project_group_create(tenant=tenant, name="web")
    image = _image(tenant)
    for name, state, in_group in (("alpha", "running", True), ("beta", "stopped", False)):
        VirtualMachine.objects.create(
            tenant=tenant,
            name=name,
            image=image,
            host=host,
            domain_name=f"ic-{name}",
            state=state,
            project_group=group if in_group else None,
        )

    def names(query):
        page = owner_client.get(f"/vms/{query}").content.decode()
        return [n for n in ("alpha", "beta") if f'data-vm="{n}"' in page]

    assert names("") == ["alpha", "beta"] or names("") == ["beta", "alpha"]
    assert names("?state=stopped") == ["beta"]
    assert names("?q=alp") == ["alpha"]
    assert names(f"?project_group={group.pk}") == ["alpha"]


def test_an_image_used_by_vms_cannot_be_deleted_alone_or_in_a_batch(owner, owner_client, tenant, host):
    from images.selectors import images_owned
    from images.services import ImageInUse, image_batch_delete, image_delete

    used = _image(tenant, name="used")
    free = _image(tenant, name="free", sha256="e" * 64)
    vm = VirtualMachine.objects.create(
        tenant=tenant, name="db-1", image=used, host=host, domain_name="ic-db-1"
    )
    with pytest.raises(ImageInUse, match="db-1"):
        image_delete(image=used, actor=owner)
    result = image_batch_delete(
        tenant=tenant,
        scope=images_owned(tenant=tenant, membership=None),
        image_ids=[used.pk, free.pk],
        actor=owner,
    )
    assert [item.name for item in result.deleted] == ["free"]
    assert [(item.name, "db-1" in item.reason) for item in result.skipped] == [("used", True)]
    # The API and the page's delete say the same, naming the VM.
    _token, key = services.api_token_create(user=owner)
    response = Client(HTTP_AUTHORIZATION=f"Token {key}").delete(f"/api/v1/images/{used.pk}/")
    assert response.status_code == 409 and "db-1" in response.json()["detail"]
    page = owner_client.post(f"/images/{used.pk}/delete/")
    assert page.status_code == 409 and "db-1" in page.content.decode()
    assert Image.objects.get(pk=used.pk).status == "available"
    vm.delete()
    assert image_delete(image=used, actor=owner).status == "deleted"


def test_vms_of_another_tenant_on_a_shared_image_are_counted_not_named(owner, tenant, host):
    from images.services import ImageInUse, image_delete

    shared = _image(tenant, name="shared", sharing="global")
    other = services.tenant_create(name="initech")
    VirtualMachine.objects.create(
        tenant=other, name="initech-secret", image=shared, host=host, domain_name="ic-s"
    )
    with pytest.raises(ImageInUse) as refused:
        image_delete(image=shared, actor=owner)
    assert "initech-secret" not in str(refused.value) and "another tenant" in str(refused.value)


def test_a_vms_stage_is_worded_for_each_reader(owner, owner_client, tenant, host):
    """The stage a job writes (in a worker's language, or in whoever clicked Reboot's) is kept as its
    msgid and read in each reader's language, on the pages and in the API."""
    from django.utils import translation

    from compute.services.vms import vm_reboot

    vm = VirtualMachine.objects.create(
        tenant=tenant, name="web-1", image=_image(tenant), host=host, domain_name="ic-web-1", state="running"
    )
    with translation.override("zh-hans"):  # as when a Chinese user's request starts the reboot
        vm_reboot(vm=vm, actor=owner, enqueue=False)
    vm.refresh_from_db()
    assert vm.stage == "Rebooting"
    owner_client.cookies["django_language"] = "zh-hans"
    assert "正在重启" in owner_client.get(f"/vms/{vm.pk}/").content.decode()
    owner_client.cookies["django_language"] = "en"
    assert "Rebooting" in owner_client.get(f"/vms/{vm.pk}/").content.decode()
