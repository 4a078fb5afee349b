"""The wizard's rules: the seed 002 name rule, the version matrix, UEFI for aarch64 and mips64el, CSM,
the target size range, SHA256 and URL checks, each reported next to its field."""

import pytest

from images.forms import ImageImportForm
from storage.services import storage_create_default
from tenants.services import project_group_create


@pytest.fixture
def storage(settings):
    return storage_create_default()


def make_form(tenant, owner, iso=False, **overrides):
    data = {
        "name": "CentOS base (v1.2)+",
        "kind": "system",
        "disk_format": "qcow2",
        "import_method": "upload",
        "os_type": "linux",
        "architecture": "x86_64",
        "boot_mode": "bios",
        "platform": "CentOS",
        "os_version": "7.9",
        "storage": str(storage_create_default().pk),
        "virtio": "on",
    }
    data.update(overrides)
    return ImageImportForm(
        {k: v for k, v in data.items() if v is not None}, tenant=tenant, membership=None, user=owner, iso=iso
    )


def test_a_valid_system_image(tenant, owner, storage):
    form = make_form(tenant, owner, labels="web, prod, web", sha256="AB" * 32, target_size_gb="40")
    assert form.is_valid(), form.errors
    fields = form.image_fields()
    assert fields["labels"] == ["web", "prod"]
    assert fields["expected_sha256"] == "ab" * 32
    assert fields["target_size"] == 40 * 1024**3
    assert fields["platform"] == "CentOS" and fields["os_version"] == "7.9"


@pytest.mark.parametrize(
    "name, ok",
    [
        ("镜像-01_测试.(x):y+z", True),
        ("a" * 128, True),
        ("a" * 129, False),
        (" leading", False),
        ("trailing ", False),
        ("semi;colon", False),
        ("slash/name", False),
        ("", False),
    ],
)
def test_name_rule(tenant, owner, storage, name, ok):
    form = make_form(tenant, owner, name=name)
    assert form.is_valid() is ok
    if not ok:
        assert "name" in form.errors


@pytest.mark.parametrize(
    "platform, arch, version, ok",
    [
        ("CentOS", "x86_64", "6.5", True),
        ("CentOS", "x86_64", "6.4", False),
        ("CentOS", "aarch64", "7.6", True),
        ("CentOS", "aarch64", "7.5", False),
        ("Ubuntu", "x86_64", "16.04", True),  # Chinese guide
        ("Ubuntu", "x86_64", "20.10", True),  # English guide
        ("Ubuntu", "aarch64", "18.04", True),
        ("Ubuntu", "aarch64", "14.04", False),
    ],
)
def test_version_matrix(tenant, owner, storage, platform, arch, version, ok):
    boot = "uefi" if arch != "x86_64" else "bios"
    form = make_form(tenant, owner, platform=platform, architecture=arch, os_version=version, boot_mode=boot)
    assert form.is_valid() is ok, form.errors
    if not ok:
        assert "os_version" in form.errors and version in form.errors["os_version"][0]


def test_windows_platform_needs_windows_os_type(tenant, owner, storage):
    form = make_form(tenant, owner, platform="Windows", os_version="Windows 10")
    assert not form.is_valid() and "platform" in form.errors
    form = make_form(tenant, owner, os_type="windows", platform="Windows", os_version="Windows Server 2019")
    assert form.is_valid(), form.errors


@pytest.mark.parametrize("arch", ["aarch64", "mips64el"])
def test_arm_and_mips_need_uefi(tenant, owner, storage, arch):
    form = make_form(tenant, owner, architecture=arch, platform="Kylin", os_version="V10", boot_mode="bios")
    assert not form.is_valid()
    assert "UEFI" in form.errors["boot_mode"][0]
    assert make_form(
        tenant, owner, architecture=arch, platform="Kylin", os_version="V10", boot_mode="uefi"
    ).is_valid()


def test_windows_7_with_uefi_needs_csm(tenant, owner, storage):
    common = {"os_type": "windows", "platform": "Windows", "os_version": "Windows 7", "boot_mode": "uefi"}
    form = make_form(tenant, owner, **common)
    assert not form.is_valid() and "csm" in form.errors
    assert make_form(tenant, owner, csm="on", **common).is_valid()


@pytest.mark.parametrize("size, ok", [("19", False), ("20", True), ("500", True), ("501", False)])
def test_target_size_range(tenant, owner, storage, size, ok):
    form = make_form(tenant, owner, target_size_gb=size)
    assert form.is_valid() is ok
    if not ok:
        assert "target_size_gb" in form.errors


def test_bad_sha256_is_reported_next_to_the_field(tenant, owner, storage):
    form = make_form(tenant, owner, sha256="xyz")
    assert not form.is_valid() and "64 hexadecimal" in form.errors["sha256"][0]


def test_url_import_needs_an_acceptable_url(tenant, owner, storage):
    assert "url" in make_form(tenant, owner, import_method="url", url="").errors
    assert "url" in make_form(tenant, owner, import_method="url", url="gopher://example.com/x").errors
    assert "url" in make_form(tenant, owner, import_method="url", url="file:///etc/passwd").errors
    form = make_form(tenant, owner, import_method="url", url="https://mirror.example.com/centos.qcow2")
    assert form.is_valid(), form.errors
    assert form.image_fields()["source"] == "url"


def test_iso_wizard_fixes_kind_and_format(tenant, owner, storage):
    form = make_form(tenant, owner, iso=True, kind=None, disk_format=None)
    assert form.is_valid(), form.errors
    fields = form.image_fields()
    assert fields["kind"] == "iso" and fields["disk_format"] == "iso"


def test_project_group_must_be_the_tenants(tenant, other_tenant, owner, storage):
    theirs = project_group_create(tenant=other_tenant, name="theirs")
    ours = project_group_create(tenant=tenant, name="ours")
    assert "project_group" in make_form(tenant, owner, project_group=str(theirs.pk)).errors
    assert make_form(tenant, owner, project_group=str(ours.pk)).is_valid()


def test_volume_image_skips_os_fields(tenant, owner, storage):
    form = make_form(tenant, owner, kind="volume", platform="", os_version="")
    assert form.is_valid(), form.errors
    assert form.image_fields()["os_type"] == "other"
