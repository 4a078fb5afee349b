"""The list's counts kept by the database: images_imagecount holds how many images a tenant has of each
kind, status and system type, and triggers on images_image keep it exact in the same transaction as
every insert, delete and change of those columns (bulk ones included). PostgreSQL and SQLite."""

from django.conf import settings
from django.db import migrations, models

COUNTED = ("tenant_id", "kind", "status", "os_type")
COLUMNS = ", ".join(COUNTED)
CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in COUNTED)
DECREMENT = (
    "UPDATE images_imagecount SET n = n - 1 WHERE " + " AND ".join(f"{c} = OLD.{c}" for c in COUNTED) + ";"
)
INCREMENT = (
    f"INSERT INTO images_imagecount ({COLUMNS}, n) VALUES ({', '.join(f'NEW.{c}' for c in COUNTED)}, 1) "
    f"ON CONFLICT ({COLUMNS}) DO UPDATE SET n = images_imagecount.n + 1;"
)
POPULATE = (
    f"INSERT INTO images_imagecount ({COLUMNS}, n) "
    f"SELECT {COLUMNS}, COUNT(*) FROM images_image GROUP BY {COLUMNS};"
)

POSTGRESQL = [
    f"""CREATE FUNCTION images_image_count() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' OR TG_OP = 'DELETE' THEN {DECREMENT} END IF;
        IF TG_OP = 'UPDATE' OR TG_OP = 'INSERT' THEN {INCREMENT} END IF;
        RETURN NULL;
    END $$;""",
    "CREATE TRIGGER images_image_count_insert_delete AFTER INSERT OR DELETE ON images_image "
    "FOR EACH ROW EXECUTE FUNCTION images_image_count();",
    f"CREATE TRIGGER images_image_count_update AFTER UPDATE OF {COLUMNS} ON images_image "
    f"FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION images_image_count();",
    POPULATE,
]
POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS images_image_count_update ON images_image;",
    "DROP TRIGGER IF EXISTS images_image_count_insert_delete ON images_image;",
    "DROP FUNCTION IF EXISTS images_image_count();",
]
SQLITE = [
    f"CREATE TRIGGER images_image_count_insert AFTER INSERT ON images_image BEGIN {INCREMENT} END;",
    f"CREATE TRIGGER images_image_count_delete AFTER DELETE ON images_image BEGIN {DECREMENT} END;",
    f"CREATE TRIGGER images_image_count_update AFTER UPDATE OF {COLUMNS} ON images_image "
    f"WHEN ({CHANGED.replace('IS DISTINCT FROM', 'IS NOT')}) BEGIN {DECREMENT} {INCREMENT} END;",
    POPULATE,
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS images_image_count_insert;",
    "DROP TRIGGER IF EXISTS images_image_count_delete;",
    "DROP TRIGGER IF EXISTS images_image_count_update;",
]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        statements = statements_by_vendor.get(schema_editor.connection.vendor)
        if statements is None:
            raise RuntimeError(
                f"images_imagecount has no triggers for {schema_editor.connection.vendor}: "
                "the image list supports PostgreSQL and SQLite"
            )
        for statement in statements:
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("images", "0006_sftp_host_keys"),
        ("storage", "0003_last_cleanup"),
        ("tenants", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ImageCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("tenant_id", models.BigIntegerField()),
                ("kind", models.CharField(max_length=8)),
                ("status", models.CharField(max_length=12)),
                ("os_type", models.CharField(max_length=16)),
                ("n", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RemoveIndex(
            model_name="image",
            name="image_list_covering",
        ),
        migrations.AddIndex(
            model_name="image",
            index=models.Index(
                condition=models.Q(("status", "deleted"), _negated=True),
                fields=["tenant", "created_at", "id"],
                include=("kind",),
                name="image_live_order",
            ),
        ),
        migrations.AddConstraint(
            model_name="imagecount",
            constraint=models.UniqueConstraint(
                fields=("tenant_id", "kind", "status", "os_type"), name="image_count_one_per_key"
            ),
        ),
        migrations.RunPython(
            _run({"postgresql": POSTGRESQL, "sqlite": SQLITE}),
            _run({"postgresql": POSTGRESQL_DROP, "sqlite": SQLITE_DROP}),
        ),
    ]
