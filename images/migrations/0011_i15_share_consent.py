"""Shares with chosen tenants get a status (pending, accepted, rejected): the plain many-to-many table
becomes the ImageShare model in place, and the shares that exist are accepted (they were visible)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0010_i15_openstack_metadata"),
        ("tenants", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ImageShare",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "image",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="shares",
                                to="images.image",
                            ),
                        ),
                        (
                            "tenant",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="image_shares",
                                to="tenants.tenant",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "images_image_shared_with",
                        "unique_together": {("image", "tenant")},
                        "verbose_name": "image share",
                        "verbose_name_plural": "image shares",
                    },
                ),
                migrations.AlterField(
                    model_name="image",
                    name="shared_with",
                    field=models.ManyToManyField(
                        blank=True,
                        related_name="images_shared_with_me",
                        through="images.ImageShare",
                        to="tenants.tenant",
                        verbose_name="shared with",
                    ),
                ),
            ],
            database_operations=[],
        ),
        migrations.AddField(
            model_name="imageshare",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Awaiting acceptance"),
                    ("accepted", "Accepted"),
                    ("rejected", "Rejected"),
                ],
                db_index=True,
                default="accepted",
                max_length=8,
                verbose_name="status",
            ),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="imageshare",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Awaiting acceptance"),
                    ("accepted", "Accepted"),
                    ("rejected", "Rejected"),
                ],
                db_index=True,
                default="pending",
                max_length=8,
                verbose_name="status",
            ),
        ),
        migrations.AddField(
            model_name="imageshare",
            name="created_at",
            field=models.DateTimeField(
                auto_now_add=True, db_index=True, default=django.utils.timezone.now, verbose_name="created"
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="imageshare",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, db_index=True, verbose_name="updated"),
        ),
    ]
