"""What an imported image may claim to be, offered as suggestions: platforms per OS type and OS versions
per platform and architecture. The seeds' version matrix (where the English and Chinese user guides
differ, their union) plus today's common systems. Nothing here is a rule: any platform and version text
is accepted (DESIGN.md: free text with suggestions). Also the name rule of seed 002."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

NAME_MAX_LENGTH = 128
NAME_PUNCTUATION = " -_.():+"
PLATFORM_MAX_LENGTH = 32
VERSION_MAX_LENGTH = 32

TARGET_SIZE_MIN_GB = 20
TARGET_SIZE_MAX_GB = 500
GiB = 1024**3


def _range(major: int, first: int, last: int) -> list[str]:
    return [f"{major}.{minor}" for minor in range(first, last + 1)]


# Suggested platform -> the OS type it belongs to (the wizard offers a type's platforms first).
PLATFORMS = {
    "CentOS": "linux",
    "Ubuntu": "linux",
    "Debian": "linux",
    "Rocky Linux": "linux",
    "AlmaLinux": "linux",
    "openEuler": "linux",
    "SUSE Linux Enterprise": "linux",
    "openSUSE": "linux",
    "Red Hat Enterprise Linux": "linux",
    "Fedora": "linux",
    "Kylin": "linux",
    "UOS": "linux",
    "Windows": "windows",
}

_WINDOWS_SERVER = [
    f"Windows Server {v}" for v in ("2008", "2008 R2", "2012", "2012 R2", "2016", "2019", "2022", "2025")
]
_WINDOWS_DESKTOP = ["Windows 7", "Windows 8", "Windows 8.1", "Windows 10", "Windows 11"]
_KYLIN = ["V10", "V10 SP1", "V10 SP2", "V10 SP3"]
_UBUNTU_LTS = ["18.04", "20.04", "22.04", "24.04"]
_RHEL_LIKE = _range(8, 0, 10) + _range(9, 0, 5)

# (platform, architecture) -> suggested versions. Seeds 000/001 give Ubuntu x86_64 "14.04 and 20.10",
# seed 004 "14.04 and 16.04"; Windows Server "2008 to 2019" and Windows "7 to 10" in English, 2008 to
# 2016 with the R2 releases in Chinese. Kylin appears as a system type in seed 000.
VERSIONS: dict[tuple[str, str], list[str]] = {
    ("CentOS", "x86_64"): _range(6, 5, 10) + _range(7, 0, 9) + ["8", "Stream 9"],
    ("CentOS", "aarch64"): _range(7, 6, 9) + ["8", "Stream 9"],
    ("Ubuntu", "x86_64"): ["14.04", "16.04", "20.10", *_UBUNTU_LTS],
    ("Ubuntu", "aarch64"): ["16.04", "18.04", "20.04", "22.04", "24.04"],
    ("Debian", "x86_64"): ["10", "11", "12", "13"],
    ("Debian", "aarch64"): ["10", "11", "12", "13"],
    ("Rocky Linux", "x86_64"): _RHEL_LIKE,
    ("Rocky Linux", "aarch64"): _RHEL_LIKE,
    ("AlmaLinux", "x86_64"): _RHEL_LIKE,
    ("AlmaLinux", "aarch64"): _RHEL_LIKE,
    ("Red Hat Enterprise Linux", "x86_64"): ["7.9", *_RHEL_LIKE],
    ("Red Hat Enterprise Linux", "aarch64"): _RHEL_LIKE,
    ("openEuler", "x86_64"): ["20.03 LTS", "22.03 LTS", "24.03 LTS"],
    ("openEuler", "aarch64"): ["20.03 LTS", "22.03 LTS", "24.03 LTS"],
    ("SUSE Linux Enterprise", "x86_64"): ["12 SP5", "15 SP4", "15 SP5", "15 SP6"],
    ("SUSE Linux Enterprise", "aarch64"): ["15 SP4", "15 SP5", "15 SP6"],
    ("openSUSE", "x86_64"): ["Leap 15.5", "Leap 15.6"],
    ("Fedora", "x86_64"): ["39", "40", "41"],
    ("Fedora", "aarch64"): ["39", "40", "41"],
    ("Windows", "x86_64"): _WINDOWS_SERVER + _WINDOWS_DESKTOP,
    ("Kylin", "x86_64"): _KYLIN,
    ("Kylin", "aarch64"): _KYLIN,
    ("Kylin", "mips64el"): _KYLIN,
    ("UOS", "x86_64"): ["20"],
    ("UOS", "aarch64"): ["20"],
}

# Seed 002: "For Windows 7 and Windows Server 2008 R2, CSM must be enabled" when they boot with UEFI.
CSM_REQUIRED_WITH_UEFI = {"Windows 7", "Windows Server 2008 R2"}
# Seed 002: "If the CPU architecture is AArch64 or MIPS64EL, you must select UEFI."
UEFI_ONLY_ARCHITECTURES = {"aarch64", "mips64el"}


def platforms_for(os_type: str) -> list[str]:
    return [platform for platform, kind in PLATFORMS.items() if kind == os_type]


def versions_for(platform: str, architecture: str) -> list[str]:
    return VERSIONS.get((platform, architecture), [])


def version_matrix() -> dict:
    """The suggestions for the wizard's script: {os_type: {platform: {architecture: [versions]}}}."""
    matrix: dict = {}
    for platform, os_type in PLATFORMS.items():
        by_arch = {arch: versions for (name, arch), versions in VERSIONS.items() if name == platform}
        matrix.setdefault(os_type, {})[platform] = by_arch
    return matrix


def validate_image_name(value: str) -> None:
    if not value:
        raise ValidationError(_("Give the image a name."), code="required")
    if len(value) > NAME_MAX_LENGTH:
        raise ValidationError(
            _("The name can be at most %(max)d characters long; this one has %(length)d."),
            code="max_length",
            params={"max": NAME_MAX_LENGTH, "length": len(value)},
        )
    if value != value.strip(" "):
        raise ValidationError(_("The name cannot begin or end with a space."), code="spaces")
    bad = sorted({ch for ch in value if not (ch.isalnum() or ch in NAME_PUNCTUATION)})
    if bad:
        raise ValidationError(
            _("The name may contain letters, digits, spaces and - _ . ( ) : + only; remove %(chars)s."),
            code="characters",
            params={"chars": " ".join(repr(ch) for ch in bad)},
        )
