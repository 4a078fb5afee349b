"""manage.py doctor: what the web server and the workers need, and whether it works here."""

from django.core.management.base import BaseCommand, CommandError

from imageconsole.health import Status, run_checks


class Command(BaseCommand):
    help = (
        "Check qemu-img, Redis (and that the workers use the same one), workers per queue, the periodic-jobs "
        "scheduler, every storage (writable, free space), the staging area shared by web server and workers, "
        "and libvirt hosts. Exits 1 when something is wrong."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout",
            type=float,
            default=10.0,
            help="Seconds to wait for the workers to answer the staging probe (default 10).",
        )

    def handle(self, *args, timeout, **options):
        checks = run_checks(probe_timeout=timeout)
        styles = {
            Status.OK: self.style.SUCCESS,
            Status.WARNING: self.style.WARNING,
            Status.PROBLEM: self.style.ERROR,
        }
        for check in checks:
            label = f"{check.area} ({check.subject})" if check.subject else check.area
            self.stdout.write(
                f"{styles[check.status](check.status.upper().ljust(7))} {label}: {check.detail}"
            )
        problems = sum(1 for check in checks if check.status == Status.PROBLEM)
        if problems:
            raise CommandError(f"{problems} problem(s) found.", returncode=1)
        self.stdout.write(self.style.SUCCESS("Everything the console needs works here."))
