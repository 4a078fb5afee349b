"""Why a failed image failed (an error, or a cancelled import).

On SQLite, adding a column with a default rebuilds images_image, which drops the triggers migration 0007
put on it (the list's counts); they are created again here. The counts themselves stay right: the
rebuild copies rows into a table without triggers."""

import importlib

from django.db import migrations, models

_counts = importlib.import_module("images.migrations.0007_list_counts")


def _restore_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in _counts.SQLITE_DROP + _counts.SQLITE[:-1]:  # the last statement populates
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0007_list_counts"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="failure_reason",
            field=models.CharField(
                blank=True,
                choices=[("", "—"), ("error", "Error"), ("cancelled", "Cancelled")],
                default="",
                help_text="For a failed image: an error, or a cancelled import (shown as “Cancelled”).",
                max_length=12,
                verbose_name="failure reason",
            ),
        ),
        migrations.RunPython(_restore_sqlite_triggers, migrations.RunPython.noop),
    ]
