"""RQ entry points: thin, take ids, call services, safe to run twice."""

from .services import capture, vms


def vm_provision_job(*, vm_id: str, password_hash: str = "") -> None:
    vms.vm_provision(vm_id=vm_id, password_hash=password_hash)


def vm_stop_job(*, vm_id: str) -> None:
    vms.vm_stop_wait(vm_id=vm_id)


def vm_reboot_job(*, vm_id: str) -> None:
    vms.vm_reboot_wait(vm_id=vm_id)


def vm_refresh_job() -> None:
    vms.vm_refresh_states()


def vm_capture_job(*, vm_id: str, image_id: str) -> None:
    capture.vm_capture_run(vm_id=vm_id, image_id=image_id)


def boot_check_job(*, check_id: str) -> None:
    from .services.bootcheck import boot_check_run

    boot_check_run(check_id=check_id)


def vm_export_job(*, export_id: str, vm_id: str = "") -> None:
    from .services.ova import vm_export_run

    vm_export_run(export_id=export_id, vm_id=vm_id)
