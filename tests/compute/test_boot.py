"""A real boot: the tiny disk imported through the pipeline boots in a VM made by the wizard's service,
from an overlay of the image cached on the host, and its init prints what the cloud-init seed carried.
Then the same VM is stopped, written to, captured as a new image, and deleted, and the image it was built
on can be deleted only after that. One VM boot for all of it: boots under TCG take seconds each."""

import hashlib
import json
import re
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

import libvirt
import pytest
from django.test import Client

from compute import hypervisor
from compute.models import ImageCacheEntry, VirtualMachine
from compute.services import capture, ova, vms
from images.models import ExportedImage, Image
from images.services import ImageInUse, image_delete
from storage.backends import ReplicaNotFound, get_backend
from tenants.models import OperationLog
from tenants.services import api_token_create as token_create

from .bootdisk import BOOT_MARKER
from .conftest import wait_for

PASSWORD = "correct-horse-9"


def _volume_xml(host, name):
    conn = libvirt.open(host.uri)
    try:
        return ET.fromstring(
            conn.storagePoolLookupByName(host.pool_name).storageVolLookupByName(name).XMLDesc(0)
        )
    finally:
        conn.close()


def finished_boots(vm) -> int:
    """How many boots printed the marker, once every boot on the console got that far (0 until then)."""
    lines = vms.vm_console_tail(vm=vm, lines=200)
    starts = sum("IMAGECONSOLE-INIT" in line for line in lines)
    done = sum(BOOT_MARKER in line for line in lines)
    return done if done and done == starts else 0


def _marker(vm):
    for line in vms.vm_console_tail(vm=vm):
        if BOOT_MARKER in line:
            return line
    return None


@pytest.mark.django_db(transaction=True)
def test_vm_boots_from_an_overlay_of_the_cached_image_with_its_seed(
    tenant,
    owner,
    owner_client,
    compute_host,
    boot_image,
    import_image,
    run_jobs,
    settings,
    monkeypatch,
    tmp_path,
    live_server,
):
    settings.COMPUTE_STOP_TIMEOUT = 2
    uploaded = []
    real_upload = hypervisor.upload_volume

    def counting_upload(host, *, name, size, blocks, progress=None):
        uploaded.append((name, size))
        return real_upload(host, name=name, size=size, blocks=blocks, progress=progress)

    monkeypatch.setattr(hypervisor, "upload_volume", counting_upload)

    vm = vms.vm_create(
        tenant=tenant,
        image=boot_image,
        name="web-1",
        vcpus=1,
        memory_mib=256,
        admin_password=PASSWORD,
        actor=owner,
    )
    assert vm.state == "creating"
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert vm.state == "running", vm.error
    line = wait_for(lambda: _marker(vm), timeout=120)
    found = dict(re.findall(r"(\w+)=(\S+)", line))
    assert found["hostname"] == "web-1"
    salt = found["hash"].split("$")[2]
    expected = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=PASSWORD, capture_output=True, text=True
    ).stdout.strip()
    assert found["hash"] == expected

    # The disk is an overlay whose backing store is the cache entry.
    entry = ImageCacheEntry.objects.get(host=compute_host)
    assert entry.sha256 == boot_image.sha256 and entry.state == "ready"
    backing = _volume_xml(compute_host, vm.disk_volume).find("backingStore/path").text
    assert backing == entry.path
    # The guest's screen.
    png = vms.vm_screenshot(vm=vm)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    # A second VM of the same image: the image is not uploaded again.
    second = vms.vm_create(
        tenant=tenant, image=boot_image, name="web-2", vcpus=1, memory_mib=128, actor=owner
    )
    assert run_jobs() == 0
    second.refresh_from_db()
    assert second.state == "running", second.error
    image_uploads = [size for name, size in uploaded if name == entry.volume]
    assert image_uploads == [boot_image.size]
    assert ImageCacheEntry.objects.filter(host=compute_host).count() == 1
    assert entry.vms.count() == 2

    # The image cannot be deleted while VMs use it; the refusal names them.
    with pytest.raises(ImageInUse) as refused:
        image_delete(image=boot_image, actor=owner)
    assert "web-1" in str(refused.value) and "web-2" in str(refused.value)

    # Stop: the tiny guest ignores ACPI, so the stop job powers it off after the timeout.
    vms.vm_stop(vm=vm, actor=owner)
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert vm.state == "stopped"
    assert OperationLog.objects.filter(action="vm.stop", target_id=str(vm.pk), result="success").exists()

    # Data written into the stopped VM's disk appears in an image created from the VM, not in the original.
    disk_path = _volume_xml(compute_host, vm.disk_volume).findtext("target/path")
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0xab 40M 64k", disk_path], check=True, capture_output=True
    )
    captured = capture.vm_capture(vm=vm, name="web-1 snapshot", actor=owner)
    assert captured.status == Image.Status.CREATING and captured.source == Image.Source.VM
    assert run_jobs() == 0
    captured.refresh_from_db()
    assert captured.status == Image.Status.AVAILABLE, captured.error
    assert captured.sha256 and captured.md5 and captured.virtual_size >= vm.disk_gb * 1000**3
    copy = tmp_path / "captured.qcow2"
    replica = captured.replicas.get()
    get_backend(replica.storage).copy_to_path(replica.key, copy)
    read = ["qemu-io", "-f", "qcow2", "-c", "read -P 0xab 40M 64k"]
    assert (
        "Pattern verification failed"
        not in subprocess.run([*read, str(copy)], capture_output=True, text=True).stdout
    )
    original = tmp_path / "original.qcow2"
    original_replica = boot_image.replicas.get()
    get_backend(original_replica.storage).copy_to_path(original_replica.key, original)
    assert (
        "Pattern verification failed"
        in subprocess.run([*read, str(original)], capture_output=True, text=True).stdout
    )
    # The flattened volume was removed from the host.
    conn = libvirt.open(compute_host.uri)
    try:
        pool = conn.storagePoolLookupByName(compute_host.pool_name)
        pool.refresh(0)
        assert not [v for v in pool.listVolumes() if "capture" in v]
    finally:
        conn.close()

    # Export as OVA: the tar becomes an export of the VM's image, listed on the Exported tab with its MD5,
    # downloaded through a download link (with curl, resumed with a Range), and it imports back through
    # the import pipeline with the same content.
    _token, key = token_create(user=owner)
    api = Client(HTTP_AUTHORIZATION=f"Token {key}")
    export = ova.vm_export_start(vm=vm, actor=owner)
    assert export.status == "exporting" and export.image == boot_image
    assert run_jobs() == 0
    export.refresh_from_db()
    assert export.status == "ready", export.error
    assert export.format == "ova" and export.filename == "web-1.ova" and len(export.md5) == 32
    exported_tab = owner_client.get("/images/exported/").content.decode()
    assert "web-1.ova" in exported_tab and export.md5 in exported_tab
    assert export.md5 in owner_client.get(f"/vms/{vm.pk}/").content.decode()
    listed = {e["id"]: e for e in api.get("/api/v1/exports/").json()}
    assert listed[str(export.pk)]["made_from"] == "web-1"
    assert listed[str(export.pk)]["md5"] == export.md5
    made = api.post(f"/api/v1/exports/{export.pk}/download-links")
    assert made.status_code == 201, made.content
    url = live_server.url + urlsplit(made.json()["url"]).path
    assert url.endswith("/web-1.ova")
    head = subprocess.run(["curl", "-sSfI", url], capture_output=True, text=True)
    assert head.returncode == 0, head.stderr
    headers = {
        k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head.stdout.splitlines()[1:])
    }
    assert headers["content-length"] == str(export.size) and headers["accept-ranges"] == "bytes"
    ova_file = tmp_path / "web-1.ova"
    first = subprocess.run(
        ["curl", "-sSf", "-r", "0-99999", "-o", str(ova_file), url], capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr
    assert ova_file.stat().st_size == 100000
    resumed = subprocess.run(
        ["curl", "-sSf", "-C", "-", "-o", str(ova_file), "-w", "%{http_code}", url],
        capture_output=True,
        text=True,
    )
    assert resumed.returncode == 0 and resumed.stdout == "206", resumed.stderr
    assert ova_file.stat().st_size == export.size
    assert hashlib.md5(ova_file.read_bytes(), usedforsecurity=False).hexdigest() == export.md5
    with tarfile.open(ova_file) as archive:
        members = archive.getnames()
        assert members == ["web-1.ovf", "web-1-disk1.vmdk"]  # the descriptor first (OVF 1.0)
        archive.extract("web-1-disk1.vmdk", tmp_path, filter="data")
    vmdk_info = subprocess.run(
        ["qemu-img", "info", "--output=json", str(tmp_path / "web-1-disk1.vmdk")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(vmdk_info.stdout)["format-specific"]["data"]["create-type"] == "streamOptimized"
    reimported = import_image(ova_file, fmt="ova", name="from-ova", cloud_init=False)
    assert reimported.disk_format == "qcow2"
    copy_back = tmp_path / "from-ova.qcow2"
    replica = reimported.replicas.get()
    get_backend(replica.storage).copy_to_path(replica.key, copy_back)
    compare = subprocess.run(
        ["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(copy_back), disk_path],
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0, compare.stdout + compare.stderr
    # Deleted like any export: the file leaves the storage and the link stops working.
    stored = get_backend(export.storage)
    assert stored.export_size(export.key) == export.size
    deleted = owner_client.post(f"/images/exports/{export.pk}/delete/")
    assert deleted.status_code == 302
    assert not ExportedImage.objects.filter(pk=export.pk).exists()
    with pytest.raises(ReplicaNotFound):
        stored.export_size(export.key)
    gone = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url], capture_output=True, text=True
    )
    assert gone.stdout in ("404", "410")

    # Start, reboot and delete through the API. The tiny guest ignores the ACPI power button, so Reboot
    # resets it after the reboot timeout, says so, and the guest boots a second time.
    assert api.post(f"/api/v1/vms/{vm.pk}/reboot").status_code == 409  # stopped
    started = api.post(f"/api/v1/vms/{vm.pk}/start")
    assert started.status_code == 200 and started.json()["state"] == "running"
    boots = wait_for(lambda: finished_boots(vm), timeout=120)
    settings.COMPUTE_REBOOT_TIMEOUT = 3
    rebooting = api.post(f"/api/v1/vms/{vm.pk}/reboot").json()
    assert rebooting["state"] == "running" and rebooting["stage"] and rebooting["last_reboot"] == ""
    assert run_jobs() == 0
    after = api.get(f"/api/v1/vms/{vm.pk}/").json()
    assert (after["state"], after["stage"], after["last_reboot"]) == ("running", "", "reset")
    assert wait_for(lambda: finished_boots(vm) > boots, timeout=120)
    assert "did not react to the ACPI reboot" in owner_client.get(f"/vms/{vm.pk}/").content.decode()
    reboot_log = OperationLog.objects.filter(action="vm.reboot", target_id=str(vm.pk)).order_by("-pk")
    assert [entry.message for entry in reboot_log] == [
        "reset after 3 s without an ACPI reboot",
        "ACPI reboot",
    ]

    # Delete both VMs: domains and their volumes go, the cache entry stays; the image can be deleted now.
    assert api.delete(f"/api/v1/vms/{vm.pk}/").status_code == 204
    vms.vm_delete(vm=second, actor=owner)
    assert not VirtualMachine.objects.exists()
    conn = libvirt.open(compute_host.uri)
    try:
        assert not [d for d in conn.listAllDomains(0) if d.name() in (vm.domain_name, second.domain_name)]
        pool = conn.storagePoolLookupByName(compute_host.pool_name)
        pool.refresh(0)
        assert pool.listVolumes() == [entry.volume]
    finally:
        conn.close()
    assert image_delete(image=boot_image, actor=owner).status == Image.Status.DELETED
