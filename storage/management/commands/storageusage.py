from django.core.management.base import BaseCommand
from django.template.defaultfilters import filesizeformat

from storage import selectors
from storage.models import ImageStorage


def size(value: int) -> str:
    return filesizeformat(value).replace("\xa0", " ")


class Command(BaseCommand):
    help = "Print every image storage's state and usage: total, used, free, logical bytes and deduplication."

    def handle(self, *args, **options):
        storages = list(ImageStorage.objects.order_by("name", "pk"))
        # Names are printed whole (up to 128 characters): the column is as wide as the longest.
        width = max([len("name"), *(len(storage.name) for storage in storages)])
        header = (
            f"{'name':{width}} {'kind':12} {'state':13} {'total':>10} {'used':>10} {'free':>10} "
            f"{'logical':>10} {'dedup':>6}"
        )
        self.stdout.write(header)
        for storage in storages:
            usage = selectors.storage_usage(storage=storage, fresh=True)
            prefix = f"{storage.name:{width}} {storage.kind:12} {storage.state:13}"
            if usage is None:
                self.stdout.write(f"{prefix} unreachable: {storage.state_reason}")
                continue
            self.stdout.write(
                f"{prefix} {size(usage.total):>10} {size(usage.used):>10} {size(usage.free):>10} "
                f"{size(usage.logical):>10} {usage.dedup_ratio:>6.2f}"
            )
