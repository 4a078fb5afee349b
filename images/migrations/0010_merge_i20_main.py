"""Merge of i20 (compressed imports) with main. On SQLite, whichever branch's column was added last
rebuilt images_image and may have dropped the list-count triggers of 0007: they are created again here."""

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
        ("images", "0009_i20_upload_compression"),
        ("images", "0009_merge_20261130_0204"),
    ]

    operations = [
        migrations.RunPython(_restore_sqlite_triggers, migrations.RunPython.noop),
    ]
