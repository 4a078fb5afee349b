"""Shared by bench/list_page.py and bench/excel_export.py: a throwaway Django database and many image
rows made with bulk_create (the import pipeline is not what these benchmarks measure)."""

import hashlib
import os
import random
import sys
import tempfile
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent


def setup_django(var_dir: str | None = None) -> str:
    """Point settings at a private VAR_DIR (SQLite there unless BENCH_DATABASE_URL names another
    database) and set Django up. Returns the VAR_DIR."""
    var_dir = var_dir or tempfile.mkdtemp(prefix="imageconsole-bench-")
    os.environ["VAR_DIR"] = var_dir
    os.environ["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{var_dir}/bench.sqlite3")
    os.environ.setdefault("DEBUG", "0")
    os.environ["SECURE_COOKIES"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageconsole.settings")
    sys.path.insert(0, str(BASE))
    import django

    django.setup()
    return var_dir


PLATFORMS = [
    ("linux", "CentOS", "7.9"),
    ("linux", "Ubuntu", "20.10"),
    ("windows", "Windows", "2019"),
    ("other", "Kylin", "V10"),
]
STATUSES = ["available"] * 16 + ["failed"] * 2 + ["uploading", "deleted"]


def make_images(
    *, tenant, count: int, start: int = 0, seed: int = 1, project_groups=(), storage=None
) -> None:
    """`count` images numbered from `start`, in batches, with varied statuses, systems and labels."""
    from images.models import Image

    rng = random.Random(seed + start)
    batch = []
    for n in range(start, start + count):
        os_type, platform, version = PLATFORMS[n % len(PLATFORMS)]
        status = rng.choice(STATUSES)
        digest = hashlib.sha256(str(n).encode()).hexdigest()
        batch.append(
            Image(
                tenant=tenant,
                name=f"{platform.lower()}-{version}-image-{n:06d}",
                description=f"Image {n} for the {rng.choice(['web', 'db', 'cache', 'batch'])} tier",
                kind="system" if n % 10 else "volume",
                disk_format="qcow2",
                os_type=os_type,
                platform=platform,
                os_version=version,
                architecture="x86_64",
                status=status,
                stage="receiving" if status == "uploading" else "",
                progress=100 if status == "available" else rng.randrange(100),
                size=rng.randrange(200, 60_000) * 1024 * 1024,
                virtual_size=40 * 1024**3,
                md5=digest[:32],
                sha256=digest,
                cloud_init=bool(n % 2),
                qemu_ga=bool(n % 3),
                labels=["prod", "web"] if n % 5 == 0 else [],
                project_group=project_groups[n % len(project_groups)] if project_groups else None,
                storage=storage,
            )
        )
        if len(batch) == 5000:
            Image.objects.bulk_create(batch, batch_size=1000)
            batch = []
    if batch:
        Image.objects.bulk_create(batch, batch_size=1000)
