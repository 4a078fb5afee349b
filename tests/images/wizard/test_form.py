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
    "os_type, platform, arch, version",
    [
        ("linux", "Ubuntu", "x86_64", "24.04"),
        ("linux", "Ubuntu", "x86_64", "22.04"),
        ("windows", "Windows", "x86_64", "Windows Server 2022"),
        ("linux", "Debian", "x86_64", "12"),
        ("linux", "Rocky Linux", "x86_64", "9.4"),
        ("linux", "openEuler", "aarch64", "22.03 LTS"),
        ("linux", "CentOS", "x86_64", "6.4"),  # outside the seeds' matrix: still only a suggestion
        ("other", "FreeBSD", "x86_64", "14.1"),  # a platform the catalogue does not know
        ("linux", "", "x86_64", ""),  # both optional
    ],
)
def test_any_platform_and_version_is_accepted(tenant, owner, storage, os_type, platform, arch, version):
    boot = "uefi" if arch != "x86_64" else "bios"
    form = make_form(
        tenant,
        owner,
        os_type=os_type,
        platform=platform,
        architecture=arch,
        os_version=version,
        boot_mode=boot,
    )
    assert form.is_valid(), form.errors
    assert form.image_fields()["platform"] == platform
    assert form.image_fields()["os_version"] == version


def test_suggestions_cover_current_systems():
    from images import catalog

    assert "24.04" in catalog.versions_for("Ubuntu", "x86_64")
    assert "Windows Server 2022" in catalog.versions_for("Windows", "x86_64")
    assert "Windows Server 2025" in catalog.versions_for("Windows", "x86_64")
    assert "Windows 11" in catalog.versions_for("Windows", "x86_64")
    assert "12" in catalog.versions_for("Debian", "x86_64")
    for platform in ("Debian", "Rocky Linux", "AlmaLinux", "openEuler", "SUSE Linux Enterprise"):
        assert platform in catalog.platforms_for("linux")
    # The seeds' matrix is still offered, the union of the English and Chinese guides.
    assert {"16.04", "20.10"} <= set(catalog.versions_for("Ubuntu", "x86_64"))
    assert "6.5" in catalog.versions_for("CentOS", "x86_64")


def test_platform_and_version_longer_than_the_model_holds(tenant, owner, storage):
    form = make_form(tenant, owner, platform="x" * 33, os_version="y" * 33)
    assert not form.is_valid()
    assert {"platform", "os_version"} <= set(form.errors)


def test_fields_keep_bootstrap_classes_after_an_error(tenant, owner, storage):
    form = make_form(tenant, owner, name="", sha256="xyz")
    assert not form.is_valid()
    html = str(form["name"]) + str(form["storage"]) + str(form["platform"])
    assert 'class="form-control is-invalid"' in str(form["name"])
    assert "form-select" in str(form["storage"])
    assert 'list="platform-options"' in html


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
    # An ISO is stored unchanged: the wizard does not ask for a target size.
    assert "target_size_gb" not in form.fields and fields["target_size"] is None


def test_project_group_must_be_the_tenants(tenant, other_tenant, owner, storage):
    theirs = project_group_create(tenant=other_tenant, name="theirs")
    ours = project_group_create(tenant=tenant, name="ours")
    assert "project_group" in make_form(tenant, owner, project_group=str(theirs.pk)).errors
    assert make_form(tenant, owner, project_group=str(ours.pk)).is_valid()


def test_volume_image_skips_os_fields(tenant, owner, storage):
    form = make_form(tenant, owner, kind="volume", platform="", os_version="")
    assert form.is_valid(), form.errors
    assert form.image_fields()["os_type"] == "other"
