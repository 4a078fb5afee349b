import os
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from storage import services
from storage.models import GiB, ImageStorage


class Command(BaseCommand):
    help = (
        "Add an image storage: `--kind standalone --name N --path P`, `--kind server --name N --host IP --path P` "
        "(password in STORAGE_SSH_PASSWORD), or `--kind distributed --name N "
        "--endpoint URL --bucket B --access-key K --secret-key S`."
    )

    def add_arguments(self, parser):
        parser.add_argument("--kind", required=True, choices=ImageStorage.Kind.values)
        parser.add_argument("--name", required=True)
        parser.add_argument("--description", default="")
        parser.add_argument("--data-center", default="default")
        parser.add_argument(
            "--path", default="", help="standalone: absolute mount path (created when missing)"
        )
        parser.add_argument("--endpoint", default="", help="distributed: S3-compatible endpoint URL")
        parser.add_argument("--region", default="")
        parser.add_argument("--bucket", default="", help="distributed: created when it does not exist")
        parser.add_argument("--access-key", default="")
        parser.add_argument("--secret-key", default="", help="distributed: stored encrypted")
        parser.add_argument(
            "--capacity-gib", type=Decimal, default=None, help="distributed: space it may use"
        )
        parser.add_argument("--host", default="", help="server: the storage server's address")
        parser.add_argument("--ssh-port", type=int, default=22, help="server: SSH port")
        parser.add_argument("--user", default="root", help="server: login user")
        parser.add_argument(
            "--password",
            default=None,
            help="server: login password, used once to install the console's key (default: the environment "
            "variable STORAGE_SSH_PASSWORD, which keeps it out of the process list)",
        )
        parser.add_argument("--sync-network", default="", help="server: image sync network (CIDR)")
        parser.add_argument("--data-network", default="", help="server: data network (CIDR)")
        parser.add_argument("--reserved-gib", type=Decimal, default=Decimal(1))
        parser.add_argument("--upload-concurrency", type=int, default=1)
        parser.add_argument("--download-concurrency", type=int, default=1)

    def handle(self, *args, **options):
        try:
            storage = services.storage_create(
                kind=options["kind"],
                name=options["name"],
                description=options["description"],
                data_center=options["data_center"],
                mount_path=options["path"],
                endpoint_url=options["endpoint"],
                region=options["region"],
                bucket=options["bucket"],
                access_key=options["access_key"],
                secret_key=options["secret_key"],
                host=options["host"],
                ssh_port=options["ssh_port"],
                ssh_username=options["user"],
                password=options["password"]
                if options["password"] is not None
                else os.environ.get("STORAGE_SSH_PASSWORD", ""),
                sync_network=options["sync_network"],
                data_network=options["data_network"],
                capacity_bytes=None
                if options["capacity_gib"] is None
                else int(options["capacity_gib"] * GiB),
                reserved_bytes=int(options["reserved_gib"] * GiB),
                upload_concurrency=options["upload_concurrency"],
                download_concurrency=options["download_concurrency"],
            )
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                lines = [f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()]
            else:
                lines = error.messages
            raise CommandError("\n".join(lines)) from None
        self.stdout.write(
            f"Added {storage.get_kind_display().lower()} storage “{storage.name}” (id {storage.pk}): "
            f"{storage.get_state_display().lower()}. {storage.state_reason}".rstrip()
        )
