"""Compute hosts: added and reconnected through libvirt, in admin and by command."""

import libvirt
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from compute.models import ComputeHost
from compute.services.hosts import host_create, host_reconnect
from tenants.models import OperationLog


def test_a_host_connects_and_reads_its_facts_and_creates_its_pool(compute_host, pool_name, libvirtd):
    host = compute_host
    assert host.state == ComputeHost.State.CONNECTED, host.state_reason
    assert host.cpus >= 1 and host.memory_bytes > 0 and host.pool_capacity > 0
    assert host.arch == "x86_64" and "x86_64" in host.guest_archs
    assert host.uefi  # ovmf is installed
    # Chosen for this host: QEMU emulation, and the reason recorded.
    assert host.domain_type == "qemu" and host.domain_type_reason
    conn = libvirt.open(libvirtd)
    try:
        pool = conn.storagePoolLookupByName(pool_name)
        assert pool.isActive()
    finally:
        conn.close()
    assert OperationLog.objects.filter(action="compute_host.reconnect", target_id=str(host.pk)).exists()


def test_automatic_virtualisation_avoids_nested_kvm(libvirtd, pool_name, db):
    host = host_create(
        name="auto", uri=libvirtd, pool_name=pool_name, pool_path=f"/var/lib/libvirt/images/{pool_name}"
    )
    assert host.state == ComputeHost.State.CONNECTED
    cpuinfo = open("/proc/cpuinfo").read()
    if " hypervisor" in cpuinfo:
        assert host.domain_type == "qemu" and "nested" in host.domain_type_reason
    else:
        assert host.domain_type in ("kvm", "qemu")


def test_an_unreachable_host_is_disconnected_with_the_reason(db):
    host = host_create(name="gone", uri="qemu+tcp://127.0.0.1:1/system")
    assert host.state == ComputeHost.State.DISCONNECTED
    assert "127.0.0.1" in host.state_reason or "connect" in host.state_reason.lower()


def test_a_uri_that_is_not_qemu_is_refused(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        host_create(name="x", uri="http://example.invalid/")
    assert "uri" in error.value.message_dict


def test_reconnect_in_admin(admin_client, compute_host):
    ComputeHost.objects.filter(pk=compute_host.pk).update(state="disconnected", cpus=0)
    response = admin_client.post(
        "/admin/compute/computehost/",
        {"action": "reconnect_selected", "_selected_action": [compute_host.pk]},
        follow=True,
    )
    assert response.status_code == 200
    compute_host.refresh_from_db()
    assert compute_host.state == "connected" and compute_host.cpus >= 1
    assert "connected" in response.content.decode()
    listing = admin_client.get("/admin/compute/computehost/").content.decode()
    assert compute_host.uri in listing


def test_addcomputehost_command(libvirtd, pool_name, db, capsys):
    call_command(
        "addcomputehost",
        "--name",
        "cmd",
        "--uri",
        libvirtd,
        "--pool",
        pool_name,
        "--pool-path",
        f"/var/lib/libvirt/images/{pool_name}",
        "--virt-type",
        "qemu",
    )
    assert "connected" in capsys.readouterr().out
    host = ComputeHost.objects.get(name="cmd")
    assert host.state == "connected" and host.domain_type == "qemu"
    # Again: reconnects the same host.
    call_command("addcomputehost", "--name", "cmd")
    assert ComputeHost.objects.filter(name="cmd").count() == 1
    with pytest.raises(CommandError):
        call_command("addcomputehost", "--name", "bad", "--uri", "qemu+tcp://127.0.0.1:1/system")
    assert host_reconnect(host=host).state == "connected"


def test_admin_lists_cache_entries_and_cleans_up_those_no_vm_uses(admin_client, compute_host, tenant):
    from compute import hypervisor
    from compute.models import ImageCacheEntry, VirtualMachine
    from images.models import Image

    image = Image.objects.create(tenant=tenant, name="base", disk_format="qcow2", status="available")
    entries = []
    for n in range(2):
        volume = f"ic-cache-test-{n}"
        path = hypervisor.create_empty(compute_host, name=volume)
        entries.append(
            ImageCacheEntry.objects.create(
                host=compute_host,
                image=image,
                image_name=f"base-{n}",
                sha256=str(n) * 64,
                disk_format="qcow2",
                volume=volume,
                path=path,
                state="ready",
                size=1,
            )
        )
    VirtualMachine.objects.create(
        tenant=tenant, name="vm-1", image=image, host=compute_host, cache_entry=entries[0], domain_name="ic-x"
    )
    listing = admin_client.get("/admin/compute/imagecacheentry/").content.decode()
    assert "base-0" in listing and "base-1" in listing
    response = admin_client.post(
        "/admin/compute/imagecacheentry/",
        {"action": "cleanup_selected", "_selected_action": [e.pk for e in entries]},
        follow=True,
    )
    assert "1 cache entry removed" in response.content.decode()
    assert list(ImageCacheEntry.objects.values_list("image_name", flat=True)) == ["base-0"]
    assert hypervisor.volume_path(compute_host, "ic-cache-test-1") is None
    assert hypervisor.volume_path(compute_host, "ic-cache-test-0")
