from django.core.management.base import BaseCommand, CommandError

from storage.backends import StorageError
from storage.models import ImageStorage

from ...services.storage_data import storage_data_cleanup


class Command(BaseCommand):
    help = (
        "Data cleanup of one image storage, now: remove the chunks or objects no replica references and "
        "expired staging files (data younger than STORAGE_CLEANUP_GRACE_HOURS stays), and print the bytes freed."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the storage's name")

    def handle(self, *args, name, **options):
        storage = ImageStorage.objects.filter(name=name).first()
        if storage is None:
            known = ", ".join(ImageStorage.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No storage is named “{name}” (storages: {known}).")
        try:
            report = storage_data_cleanup(storage=storage)
        except StorageError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(report).replace("\xa0", " "))
