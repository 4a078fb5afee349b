"""What an imported image may claim to be: platforms per OS type, OS versions per platform and
architecture (the seeds' matrix; where the English and Chinese user guides differ, their union), and
the name rule of seed 002."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

NAME_MAX_LENGTH = 128
NAME_PUNCTUATION = " -_.():+"

TARGET_SIZE_MIN_GB = 20
TARGET_SIZE_MAX_GB = 500
GiB = 1024**3


def _range(major: int, first: int, last: int) -> list[str]:
    return [f"{major}.{minor}" for minor in range(first, last + 1)]


# platform -> OS type
PLATFORMS = {
    "CentOS": "linux",
    "Ubuntu": "linux",
    "Kylin": "linux",
    "Windows": "windows",
    "Other": "other",
}

# (platform, architecture) -> versions. Seeds 000/001 give Ubuntu x86_64 "14.04 and 20.10", seed 004
# "14.04 and 16.04"; Windows Server "2008 to 2019" and Windows "7 to 10" in English, 2008 to 2016 with
# the R2 releases in Chinese. Kylin appears as a system type in seed 000; its releases are V10 and V10 SP1-3.
VERSIONS: dict[tuple[str, str], list[str]] = {
    ("CentOS", "x86_64"): _range(6, 5, 10) + _range(7, 0, 9),
    ("CentOS", "aarch64"): _range(7, 6, 9),
    ("Ubuntu", "x86_64"): ["14.04", "16.04", "20.10"],
    ("Ubuntu", "aarch64"): ["16.04", "18.04"],
    ("Windows", "x86_64"): [
        "Windows Server 2008",
        "Windows Server 2008 R2",
        "Windows Server 2012",
        "Windows Server 2012 R2",
        "Windows Server 2016",
        "Windows Server 2019",
        "Windows 7",
        "Windows 8",
        "Windows 8.1",
        "Windows 10",
    ],
    ("Kylin", "x86_64"): ["V10", "V10 SP1", "V10 SP2", "V10 SP3"],
    ("Kylin", "aarch64"): ["V10", "V10 SP1", "V10 SP2", "V10 SP3"],
    ("Kylin", "mips64el"): ["V10", "V10 SP1", "V10 SP2", "V10 SP3"],
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
    """The whole matrix for the wizard's script: {os_type: {platform: {architecture: [versions]}}}."""
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
