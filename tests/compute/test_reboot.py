"""Reboot is an ACPI reboot, reset after a timeout when the guest does not react, and says which happened.
A guest that handles the ACPI power button (the tiny disk built with acpi=True) restarts itself: its
serial console shows the button press and a second boot, and the VM records an ACPI reboot. (The guest
that ignores the button is reset after the timeout: tests/compute/test_boot.py.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from compute.models import VirtualMachine
from compute.services import vms
from tenants.models import OperationLog

from .bootdisk import ACPI_BUTTON_MARKER, ACPI_READY_MARKER, BOOT_MARKER
from .conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _console(vm) -> list[str]:
    return vms.vm_console_tail(vm=vm, lines=200)


def _count(vm, marker: str) -> int:
    return sum(marker in line for line in _console(vm))


def test_an_acpi_aware_guest_restarts_itself_on_reboot(
    tenant, owner, owner_client, compute_host, import_image, acpi_boot_qcow2, run_jobs, settings
):
    settings.COMPUTE_REBOOT_TIMEOUT = 90  # far longer than the guest needs: a reset would be a failure
    image = import_image(acpi_boot_qcow2, name="acpi-linux")
    vm = vms.vm_create(tenant=tenant, image=image, name="acpi-1", vcpus=1, memory_mib=256, actor=owner)
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert vm.state == "running", vm.error
    # The guest listens to the power button and has booted to its marker.
    wait_for(lambda: _count(vm, BOOT_MARKER) == 1 and _count(vm, ACPI_READY_MARKER) == 1, timeout=120)

    response = owner_client.post(f"/vms/{vm.pk}/reboot/", follow=True)
    assert "restart through ACPI" in response.content.decode()
    vm.refresh_from_db()
    assert vm.stage  # rebooting
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert (vm.state, vm.stage, vm.last_reboot) == ("running", "", VirtualMachine.Reboot.ACPI)
    wait_for(lambda: _count(vm, BOOT_MARKER) == 2, timeout=120)
    console = _console(vm)
    assert _count(vm, ACPI_BUTTON_MARKER) == 1
    # The button press came between the two boots: the guest shut itself down and came back.
    order = [line for line in console if BOOT_MARKER in line or ACPI_BUTTON_MARKER in line]
    assert [ACPI_BUTTON_MARKER in line for line in order] == [False, True, False]
    page = owner_client.get(f"/vms/{vm.pk}/").content.decode()
    assert 'data-how="acpi"' in page and "the guest restarted itself" in page
    assert OperationLog.objects.filter(
        action="vm.reboot", target_id=str(vm.pk), message="rebooted through ACPI"
    ).exists()

    # Stop's ACPI shutdown is obeyed as well: not forced.
    wait_for(lambda: _count(vm, ACPI_READY_MARKER) == 2, timeout=60)
    vms.vm_stop(vm=vm, actor=owner)
    assert run_jobs() == 0
    vm.refresh_from_db()
    assert vm.state == "stopped"
    assert OperationLog.objects.filter(action="vm.stop", target_id=str(vm.pk), message="shut down").exists()
    vms.vm_delete(vm=vm, actor=owner)


def test_a_stage_whose_job_was_lost_is_cleared_by_the_state_refresh(
    tenant, compute_host, import_image, boot_qcow2
):
    """A reboot (or stop) whose worker was killed would hide Stop and Reboot for good: the periodic state
    refresh clears a stage older than the timeouts allow."""
    image = import_image(boot_qcow2, name="lost-stage")
    fresh, lost = (
        VirtualMachine.objects.create(
            tenant=tenant,
            name=name,
            image=image,
            host=compute_host,
            domain_name=f"ic-{name}",
            state="running",
        )
        for name in ("fresh", "lost")
    )
    VirtualMachine.objects.filter(pk=fresh.pk).update(stage="Rebooting", updated_at=timezone.now())
    VirtualMachine.objects.filter(pk=lost.pk).update(
        stage="Rebooting", updated_at=timezone.now() - vms.stage_lost_after() - timedelta(seconds=1)
    )
    vms.vm_refresh_states()
    fresh.refresh_from_db()
    lost.refresh_from_db()
    assert fresh.stage == "Rebooting" and lost.stage == ""
