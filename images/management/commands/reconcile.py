"""manage.py reconcile: fail or resume imports whose job is gone, fail expired uploads, remove orphaned
staging. The same work runs every minute from the cron scheduler (manage.py rqcron images.cron).

Run from a shell, it must talk to the Redis the workers use: against another one every running import's
job looks lost. So it first checks that a worker listens on one of our queues there.
"""

from urllib.parse import urlsplit, urlunsplit

import django_rq
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError
from rq import Worker

from images.services.reconcile import reconcile


def _shown(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    return urlunsplit(parts)


class Command(BaseCommand):
    help = "Fail or resume imports whose job is gone; remove orphaned staging files."

    def add_arguments(self, parser):
        parser.add_argument(
            "--without-workers",
            action="store_true",
            help="run although no RQ worker is registered at REDIS_URL (every worker is stopped)",
        )

    def check_workers(self) -> None:
        url = _shown(settings.REDIS_URL)
        try:
            workers = Worker.all(connection=django_rq.get_connection("default"))
        except RedisError as error:
            raise CommandError(f"Redis at REDIS_URL={url} does not answer: {error}") from None
        listened = {name for worker in workers for name in worker.queue_names()}
        if not listened & set(settings.RQ_QUEUES):
            raise CommandError(
                f"No RQ worker listens on this Redis (REDIS_URL={url}), so it is not the one the workers "
                "use, and reconciling against it would fail imports that are running. Set REDIS_URL as the "
                "workers have it (`make run` writes it to var/redis.env: run `. var/redis.env` first), or "
                "pass --without-workers when every worker is stopped."
            )

    def handle(self, *args, without_workers=False, **options):
        if not without_workers:
            self.check_workers()
        report = reconcile()
        for label, ids in (
            ("failed (job lost)", report.failed),
            ("resumed (job enqueued again)", report.resumed),
            ("failed (upload expired)", report.expired),
            ("staging removed", report.staging_removed),
            ("leftovers cleaned", report.cleaned),
        ):
            for image_id in ids:
                self.stdout.write(f"{label}: {image_id}")
        for label, ids in report.other.items():
            for image_id in ids:
                self.stdout.write(f"{label}: {image_id}")
        self.stdout.write(str(report))
