"""manage.py reconcile: fail or resume imports whose job is gone, fail expired uploads, remove orphaned
staging. The same work runs every minute from the cron scheduler (manage.py rqcron images.cron)."""

from django.core.management.base import BaseCommand

from images.services.reconcile import reconcile


class Command(BaseCommand):
    help = "Fail or resume imports whose job is gone; remove orphaned staging files."

    def handle(self, *args, **options):
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
