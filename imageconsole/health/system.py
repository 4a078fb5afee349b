"""Checks of this machine: qemu-img, the database, the storages."""

from __future__ import annotations

import subprocess

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from storage.backends import StorageError, get_backend
from storage.models import ImageStorage

from . import probe
from .base import Check, Status

# qemu-img


def qemu_img_check() -> Check:
    area = "qemu-img"
    try:
        return Check(area, _("web server"), Status.OK, probe.qemu_img_version())
    except FileNotFoundError:
        detail = _("qemu-img is not installed here: install it with apt-get install qemu-utils.")
    except (OSError, subprocess.SubprocessError) as error:
        detail = _("qemu-img does not run: %(reason)s") % {"reason": error}
    return Check(area, _("web server"), Status.PROBLEM, detail)


# The database


def database_check() -> Check:
    area = _("Database")
    alias = DEFAULT_DB_ALIAS
    vendor = connections[alias].vendor
    try:
        executor = MigrationExecutor(connections[alias])
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except DatabaseError as error:
        return Check(
            area, vendor, Status.PROBLEM, _("Cannot use the database: %(reason)s") % {"reason": error}
        )
    if unapplied:
        return Check(
            area,
            vendor,
            Status.PROBLEM,
            ngettext(
                "%(count)d migration is not applied: run manage.py migrate.",
                "%(count)d migrations are not applied: run manage.py migrate.",
                len(unapplied),
            )
            % {"count": len(unapplied)},
        )
    return Check(area, vendor, Status.OK, _("Reachable; every migration applied."))


# Storages


def storage_checks(storages: list[ImageStorage]) -> list[Check]:
    area = _("Storage")
    if not storages:
        return [
            Check(
                area,
                "",
                Status.WARNING,
                _("No image storage: add one in Django admin or with manage.py addstorage."),
            )
        ]
    checks = []
    for storage in storages:
        if not storage.enabled:
            checks.append(Check(area, storage.name, Status.WARNING, _("Disabled: not checked.")))
            continue
        backend = get_backend(storage)
        try:
            backend.test_connection()
            free = backend.free_bytes()
        except StorageError as error:
            checks.append(
                Check(area, storage.name, Status.PROBLEM, _("Not writable: %(reason)s") % {"reason": error})
            )
            continue
        sizes = {"free": filesizeformat(free), "reserved": filesizeformat(storage.reserved_bytes)}
        if free <= storage.reserved_bytes:
            detail = (
                _(
                    "Writable, but only %(free)s free, within the reserved %(reserved)s: every import is "
                    "refused. Free space or lower the reserved capacity."
                )
                % sizes
            )
            checks.append(Check(area, storage.name, Status.PROBLEM, detail))
        else:
            detail = _("Writable; %(free)s free (%(reserved)s reserved).") % sizes
            checks.append(Check(area, storage.name, Status.OK, detail))
    return checks
