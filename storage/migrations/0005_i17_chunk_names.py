from django.db import migrations, models


class Migration(migrations.Migration):
    """Chunks of new stores are named by BLAKE3; the stores that exist keep SHA256 (their chunks have those
    names, and new chunks must meet them to be stored once) until `manage.py convertchunks` converts them."""

    dependencies = [("storage", "0004_i16_server_storage")]

    operations = [
        migrations.AddField(
            model_name="imagestorage",
            name="chunk_names",
            field=models.CharField(
                choices=[("sha256", "SHA256"), ("blake3", "BLAKE3")],
                default="sha256",
                editable=False,
                max_length=8,
                verbose_name="chunk names",
            ),
        ),
        migrations.AlterField(
            model_name="imagestorage",
            name="chunk_names",
            field=models.CharField(
                choices=[("sha256", "SHA256"), ("blake3", "BLAKE3")],
                default="blake3",
                editable=False,
                help_text=(
                    "The hash that names the chunks new images are cut into (standalone storage). A storage "
                    "made before BLAKE3 keeps SHA256 until it is converted with manage.py convertchunks."
                ),
                max_length=8,
                verbose_name="chunk names",
            ),
        ),
    ]
