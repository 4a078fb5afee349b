"""Which VM actions a request may take: the same answers hide buttons and guard the POSTs (console and
API alike)."""

from tenants.permissions import can_manage

from .models import VirtualMachine

S = VirtualMachine.State


def vm_actions(request, vm: VirtualMachine) -> dict[str, bool]:
    manage = can_manage(request)
    return {
        "start": manage and vm.state == S.STOPPED,
        "stop": manage and vm.state == S.RUNNING and not vm.stage,
        "reboot": manage and vm.state == S.RUNNING and not vm.stage,
        "delete": manage and vm.state != S.CREATING,
        "capture": manage and vm.state == S.STOPPED and bool(vm.disk_volume),
        "export": manage and vm.state == S.STOPPED and bool(vm.disk_volume),
    }
