"""The list's count triggers again, on SQLite, after every branch's 0008: adding a column with a default
rebuilds images_image there and drops its triggers (migration 0007), whatever order the 0008s ran in."""

import importlib

from django.db import migrations

_counts = importlib.import_module("images.migrations.0007_list_counts")


def _restore_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in _counts.SQLITE_DROP + _counts.SQLITE[:-1]:  # the last statement populates
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0009_merge_20261130_0204"),
    ]

    operations = [migrations.RunPython(_restore_sqlite_triggers, migrations.RunPython.noop)]
