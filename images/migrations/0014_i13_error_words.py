"""An image's error keeps its words (msgid and values), so each reader sees it in their language."""

import importlib

from django.db import migrations, models


def restore_count_triggers(apps, schema_editor):
    """SQLite rebuilds images_image to add the column, and the rebuild drops the triggers of 0007 that
    keep images_imagecount: make them again and recount. PostgreSQL adds the column in place."""
    if schema_editor.connection.vendor != "sqlite":
        return
    counts = importlib.import_module("images.migrations.0007_list_counts")
    for statement in [*counts.SQLITE_DROP, "DELETE FROM images_imagecount;", *counts.SQLITE]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0013_merge_20261130_0249"),
    ]

    operations = [
        migrations.AddField(
            model_name="image",
            name="error_words",
            field=models.JSONField(blank=True, editable=False, null=True, verbose_name="error words"),
        ),
        migrations.RunPython(restore_count_triggers, migrations.RunPython.noop),
    ]
