"""Boot check: the image boots in a throwaway VM without network; the screen, the console and the time to
the first output are kept on the image's page; a disk that does not boot is a failed check."""

import io
import subprocess

import libvirt
import pytest
from PIL import Image as PILImage

from compute.models import BootCheck
from compute.services.bootcheck import boot_check_start, classify

pytestmark = pytest.mark.django_db(transaction=True)


def _domains(host):
    conn = libvirt.open(host.uri)
    try:
        return [d.name() for d in conn.listAllDomains(0)]
    finally:
        conn.close()


def test_a_bootable_image_passes_and_its_page_shows_screen_and_console(
    owner_client, owner, compute_host, boot_image, run_jobs, settings
):
    settings.COMPUTE_BOOT_CHECK_SECONDS = 15
    page = owner_client.get(f"/images/{boot_image.pk}/").content.decode()
    assert 'data-testid="boot-check-start"' in page
    response = owner_client.post(f"/vms/boot-checks/images/{boot_image.pk}/")
    assert response.status_code == 302
    check = BootCheck.objects.get(image=boot_image)
    assert check.state == "running"
    assert run_jobs() == 0
    check.refresh_from_db()
    assert check.state == "passed", check.finding_text
    assert 0 <= check.first_output_seconds < 15
    assert "SeaBIOS" in check.console
    thumbnail = PILImage.open(io.BytesIO(bytes(check.thumbnail)))
    assert thumbnail.width <= 320
    assert PILImage.open(io.BytesIO(bytes(check.screenshot))).width > thumbnail.width
    # The throwaway VM and its volumes are gone; the cache entry stays.
    assert check.domain_name not in _domains(compute_host)
    page = owner_client.get(f"/images/{boot_image.pk}/").content.decode()
    assert 'data-state="passed"' in page and "First console output after" in page
    assert owner_client.get(f"/vms/boot-checks/{check.pk}/thumbnail.png")["Content-Type"] == "image/png"


def test_a_disk_without_a_boot_loader_fails_the_check(
    owner, compute_host, import_image, run_jobs, settings, tmp_path
):
    settings.COMPUTE_BOOT_CHECK_SECONDS = 40
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(blank), "64M"], check=True, capture_output=True)
    image = import_image(blank, name="blank", cloud_init=False)
    check = boot_check_start(image=image, actor=owner)
    assert run_jobs() == 0
    check.refresh_from_db()
    assert check.state == "failed" and "No bootable device" in check.finding_text
    assert check.seconds < 40  # recognised before the time was up
    assert check.domain_name not in _domains(compute_host)


def test_a_uefi_disk_without_a_boot_loader_fails_the_check(
    owner, compute_host, import_image, run_jobs, settings, tmp_path
):
    """OVMF finds nothing to boot, starts its UEFI shell and waits at the prompt: a failed check."""
    settings.COMPUTE_BOOT_CHECK_SECONDS = 30
    blank = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-f", "qcow2", str(blank), "64M"], check=True, capture_output=True)
    image = import_image(blank, name="blank-uefi", cloud_init=False, boot_mode="uefi")
    check = boot_check_start(image=image, actor=owner)
    assert run_jobs() == 0
    check.refresh_from_db()
    assert check.state == "failed", check.console
    assert check.message == "uefi_shell" and "UEFI firmware found nothing" in check.finding_text
    assert "UEFI Interactive Shell" in check.console
    assert check.domain_name not in _domains(compute_host)


@pytest.mark.parametrize(
    ("console", "state"),
    [
        (
            "SeaBIOS\nBooting from Hard Disk...\nBoot failed: not a bootable disk\nNo bootable device.",
            "failed",
        ),
        ("[    1.2] Kernel panic - not syncing: VFS: Unable to mount root fs", "failed"),
        ("", "silent"),
        ("Debian GNU/Linux 12 web-1 ttyS0\nweb-1 login:", "passed"),
        ("BdsDxe: No bootable option or device was found.", "failed"),
        # OVMF's shell waiting at its prompt: nothing on the disk started.
        (
            "UEFI Interactive Shell v2.2\nMapping table\nPress ESC in 1 seconds to skip startup.nsh\nShell> ",
            "failed",
        ),
        # The prompt followed by what the disk's startup.nsh started.
        (
            "UEFI Interactive Shell v2.2\nShell> fs0:\nFS0:\\> \\vmlinuz initrd=\\initrd.gz\nIMAGECONSOLE-INIT",
            "passed",
        ),
    ],
)
def test_what_the_console_shows_decides(console, state):
    assert classify(console)[0] == state
