"""Server time of the image list page at 10, 10,000 and 100,000 images in one tenant.

For each size: the first page, a filtered page (status, system type and a sort), page 2,500 (the middle at
100,000) and page 5,000 (20 rows a page; past the last page it shows the last one), each requested through Django's test client (middleware, view, template; no network), as the
median of 15 runs after a warm-up, with the number of SQL queries. Goal: under 50 ms per page at 100,000.
The pages are measured in a fresh process, as a web server's would be: the process that ran the
migrations and made the rows holds their objects, and Python's garbage collector walking them added
10-15 ms to every request there.

    .venv/bin/python bench/list_page.py            # SQLite in a temporary directory
    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/list_page.py
"""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _image_rows import make_images, setup_django  # noqa: E402

SIZES = (10, 10_000, 100_000)
RUNS = 15
PAGES = {
    "first page": "/images/",
    "filtered page": "/images/?status=available&os_type=linux&ordering=-created",
    "page 2,500": "/images/?page=2500",
    "page 5,000": "/images/?page=5000",
}


def main() -> None:
    setup_django()
    from django.core.management import call_command
    from django.db import connection

    from images.models import Image
    from tenants import services
    from tenants.models import Membership

    call_command("migrate", verbosity=0)
    tenant = services.tenant_create(name="bench")
    other = services.tenant_create(name="neighbour")
    owner = services.user_create(username="bench-owner", password="bench-owner-password-1")
    services.membership_add(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    groups = [services.project_group_create(tenant=tenant, name=f"group-{n}") for n in range(5)]
    # A few images other tenants share with this one, so the list pages own and shared images together.
    make_images(tenant=other, count=20, seed=7)
    Image.objects.filter(tenant=other).update(status="available")
    for image in Image.objects.filter(tenant=other)[:3]:
        image.sharing = "global"
        image.save(update_fields=["sharing"])
    for image in Image.objects.filter(tenant=other, sharing="private")[:2]:
        image.sharing = "tenants"
        image.save(update_fields=["sharing"])
        image.shared_with.add(tenant)

    print(f"database: {connection.vendor}; CPUs: {os.cpu_count()}; {RUNS} runs per figure, median (max)")
    print(f"{'images':>8}  {'visible':>8}  {'page':<14} {'median ms':>9} {'max ms':>7} {'queries':>7}")
    made = 0
    for size in SIZES:
        make_images(tenant=tenant, count=size - made, start=made, project_groups=groups)
        made = size
        if connection.vendor == "postgresql":
            # What autovacuum does to a table that has been written to: statistics and visibility map.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE images_image")
        subprocess.run(
            [sys.executable, __file__, "--measure", str(size), os.environ["VAR_DIR"]],
            check=True,
            env=os.environ,
        )


def measure(size: int, var_dir: str) -> None:
    """In a fresh process: the four pages of the bench user's list, one line each."""
    setup_django(var_dir)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from images.models import Image

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-owner"))
    tenant_id = get_user_model().objects.get(username="bench-owner").memberships.get().tenant_id
    visible = Image.objects.filter(tenant_id=tenant_id).exclude(status="deleted").count()
    for label, url in PAGES.items():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        timings = []
        for _ in range(RUNS):
            started = time.perf_counter()
            response = client.get(url)
            timings.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        print(
            f"{size:>8,}  {visible:>8,}  {label:<14} {statistics.median(timings):>9.1f} "
            f"{max(timings):>7.1f} {len(queries.captured_queries):>7}",
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        measure(int(sys.argv[2]), sys.argv[3])
    else:
        main()
