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


@pytest.mark.django_db
def test_login_throttling_in_admin_speaks_chinese(client, django_user_model):
    """django-axes ships no Simplified Chinese: its admin section, columns and filters are translated by the
    console's own catalogue."""
    from axes.models import AccessAttempt

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-123456789")
    AccessAttempt.objects.create(
        username="mallory", ip_address="203.0.113.9", user_agent="curl", failures_since_start=3
    )
    client.force_login(admin)
    client.cookies["django_language"] = "zh-hans"
    index = client.get("/admin/").content.decode()
    assert "登录限制" in index and "访问尝试" in index and "访问日志" in index
    assert "Axes" not in index and "Access attempts" not in index
    listing = client.get("/admin/axes/accessattempt/").content.decode()
    assert "用户代理" in listing and "尝试时间" in listing and "mallory" in listing
    assert "User Agent" not in listing and "Attempt Time" not in listing
    assert "状态" in listing and "Status" not in listing  # a column axes names after a method
