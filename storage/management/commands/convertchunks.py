from django.core.management.base import BaseCommand, CommandError
from django.template.defaultfilters import filesizeformat

from storage.backends import StorageError
from storage.models import ImageStorage
from storage.services import storage_convert_chunk_names


class Command(BaseCommand):
    help = (
        "Name a standalone storage's chunks by BLAKE3 instead of SHA256 (storages made before BLAKE3 keep "
        "SHA256 until converted): imports into it then cost less CPU, and deduplicate against the old chunks. "
        "Safe while imports run; reads every chunk once. Without names: every storage still on SHA256."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", help="storage names")

    def handle(self, *args, names, **options):
        storages = ImageStorage.objects.exclude(kind=ImageStorage.Kind.DISTRIBUTED)
        if names:
            storages = storages.filter(name__in=names)
            unknown = set(names) - {storage.name for storage in storages}
            if unknown:
                raise CommandError(f"no standalone storage named {', '.join(sorted(unknown))}")
        else:
            storages = storages.filter(chunk_names=ImageStorage.ChunkNames.SHA256)
        failed = False
        for storage in storages.order_by("name"):
            self.stdout.write(f"{storage.name}: converting")
            try:
                result = storage_convert_chunk_names(
                    storage=storage, progress=lambda key: self.stdout.write(f"  {key}")
                )
            except StorageError as error:
                self.stderr.write(f"{storage.name}: {error}")
                failed = True
                continue
            read = filesizeformat(result.bytes_read).replace("\xa0", " ")
            self.stdout.write(
                f"{storage.name}: {result.replicas} replicas and {result.chunks} chunks ({read} read) now "
                "named by BLAKE3"
            )
            if result.changed:
                self.stdout.write(
                    f"{storage.name}: {len(result.changed)} replicas were written anew meanwhile; run again "
                    f"for them: {', '.join(result.changed)}"
                )
        if failed:
            raise CommandError("some storages were not converted")
