"""The Simplified Chinese catalogue is complete: every translatable string in the code has a translation."""

import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings

BASE = Path(settings.BASE_DIR)
APPS = ["imageconsole", "tenants", "storage", "images", "recyclebin", "compute", "openstack"]


def _catalogue(root: Path, app: str) -> polib.POFile:
    return polib.pofile(str(root / app / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))


def _key(entry) -> tuple[str, str]:
    return entry.msgctxt or "", entry.msgid


@pytest.mark.parametrize("app", APPS)
def test_every_entry_is_translated(app):
    untranslated = [
        entry.msgid
        for entry in _catalogue(BASE, app)
        if not entry.obsolete
        and ("fuzzy" in entry.flags or not (entry.msgstr or any(entry.msgstr_plural.values())))
    ]
    assert untranslated == [], f"{app}: translate these in {app}/locale/zh_Hans (make makemessages)"


def test_catalogues_hold_every_string_of_the_code(tmp_path):
    """Extract the strings from a copy of the source and compare with the committed catalogues."""
    copy = tmp_path / "src"
    ignore = shutil.ignore_patterns(
        ".venv", "node_modules", "var", "staticfiles", ".git", "*.mo", "__pycache__", "tests", "bench"
    )
    shutil.copytree(BASE, copy, ignore=ignore)
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "makemessages",
            "-l",
            "zh_Hans",
            "--no-location",
            "--no-obsolete",
            "-v",
            "0",
        ],
        cwd=copy,
        check=True,
        env={"PATH": "/usr/bin:/bin", "VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x"},
    )
    for app in APPS:
        extracted = {_key(e) for e in _catalogue(copy, app)}
        committed = {_key(e) for e in _catalogue(BASE, app) if not e.obsolete}
        missing = sorted(extracted - committed)
        assert missing == [], f"{app}: run `make makemessages` and translate: {missing[:20]}"
