"""manage.py importimage FILE --tenant T --name N --format F [...]: import a local file as a tenant's image.
manage.py importimage --url URL --tenant T --name N --format F [...]: import from http(s), ftp, sftp or
file:// (file:// with --user naming a platform administrator); the imports workers fetch it.

The file takes an upload's path (stored as it is read, or staged and converted), with the same checks
as the wizard; by default the follow-up work runs here too, so the command returns when the image is
available (or says why it failed). With --background the workers finish it.
"""

import os
import time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from images.forms import ImageImportForm
from images.inspection import ImportRefused
from images.models import Image, UploadSession
from images.services import ImportNotAccepted, image_import_create, needs_conversion, upload_begin
from images.services.decompressing import import_decompress
from images.services.pipeline import import_convert, import_finish
from images.services.receiving import BLOCK_SIZE, ImportReceiver
from storage.models import ImageStorage
from tenants.models import ProjectGroup, Tenant


class Command(BaseCommand):
    help = "Import a local image file into a tenant (the same checks as the console's wizard)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?")
        parser.add_argument(
            "--url",
            help="Import from this URL instead of a file: http(s)://, ftp://[user:password@], sftp://user[:password]@, "
            "file:/// (administrators). The imports workers fetch it.",
        )
        parser.add_argument("--tenant", required=True, help="Tenant name or id.")
        parser.add_argument("--name", required=True)
        parser.add_argument("--format", required=True, choices=[c for c, _l in Image.DiskFormat.choices])
        parser.add_argument(
            "--kind", choices=["system", "volume", "iso"], help="Default: iso for --format iso, else system."
        )
        parser.add_argument("--description", default="")
        parser.add_argument("--os-type", default="other", choices=[c for c, _l in Image.OSType.choices])
        parser.add_argument(
            "--architecture", default="x86_64", choices=[c for c, _l in Image.Architecture.choices]
        )
        parser.add_argument(
            "--boot-mode", help="bios or uefi; default uefi for aarch64 and mips64el, else bios."
        )
        parser.add_argument("--csm", action="store_true")
        parser.add_argument("--platform", default="", help="Default: the first platform of the OS type.")
        parser.add_argument("--os-version", default="")
        parser.add_argument("--no-virtio", action="store_true")
        parser.add_argument("--cloud-init", action="store_true")
        parser.add_argument("--qemu-ga", action="store_true")
        parser.add_argument("--hot-upgrade", action="store_true")
        parser.add_argument("--label", action="append", default=[], help="Repeat for several labels.")
        parser.add_argument("--project-group", help="Project group name.")
        parser.add_argument("--storage", help="Storage name; default: the first storage open to imports.")
        parser.add_argument("--target-size-gb", type=int)
        parser.add_argument(
            "--sha256", default="", help="Verify against this SHA256 of the image (after any decompression)."
        )
        parser.add_argument("--checksum", default="", help="Verify against this checksum (hex).")
        parser.add_argument(
            "--checksum-algorithm",
            default="",
            choices=["", *(c for c, _l in Image.ChecksumAlgorithm.choices)],
            help="The checksum's algorithm; default: told by its length.",
        )
        parser.add_argument(
            "--checksum-of",
            default="sent",
            choices=[c for c, _l in Image.ChecksumOf.choices],
            help="sent (default): the file as read or downloaded, compressed if it is; image: the image "
            "after decompression.",
        )
        parser.add_argument(
            "--checksum-file-url",
            default="",
            help="A SHA256SUMS, SHA512SUMS or CHECKSUM file; the line for the file's name is verified.",
        )
        parser.add_argument(
            "--checksum-signature-url",
            default="",
            help="The checksum file's detached OpenPGP signature, verified against the trusted signing keys.",
        )
        parser.add_argument("--user", help="Record this user as the image's owner and the actor.")
        parser.add_argument(
            "--background", action="store_true", help="Leave inspection/conversion to the workers."
        )

    def handle(self, *args, **options):
        path = options["file"]
        if bool(path) == bool(options["url"]):
            raise CommandError("Give either a FILE or --url URL.")
        if options["url"]:
            return self.handle_url(options)
        if not os.path.isfile(path):
            raise CommandError(f"{path}: no such file.")
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None and options["tenant"].isdigit():
            tenant = Tenant.objects.filter(pk=int(options["tenant"])).first()
        if tenant is None:
            raise CommandError(f"No tenant named {options['tenant']!r}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        iso = options["format"] == "iso" or options["kind"] == "iso"
        form = ImageImportForm(
            self.form_data(tenant, options), tenant=tenant, membership=None, user=user, iso=iso
        )
        if not form.is_valid():
            lines = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
            raise CommandError("The image was not created:\n  " + "\n  ".join(lines))
        size = os.path.getsize(path)
        try:
            image = image_import_create(
                tenant=tenant, fields=form.image_fields(), actor=user, upload_length=size
            )
            upload_begin(image_id=image.pk, length=size, filename=os.path.basename(path))
        except Exception as error:  # noqa: BLE001 - ValidationError, quota, space: said plainly
            raise CommandError(" ".join(getattr(error, "messages", [str(error)]))) from error
        self.stdout.write(f"Image {image.pk} “{image.name}”: sending {size} bytes…")
        started = time.monotonic()
        try:
            with ImportReceiver(image_id=image.pk, offset=0, enqueue=options["background"]) as receiver:
                with open(path, "rb") as source:
                    while data := source.read(BLOCK_SIZE):
                        receiver.write(data)
                receiver.commit()
        except (ImportRefused, ImportNotAccepted) as error:
            raise CommandError(str(error)) from error
        elapsed = max(time.monotonic() - started, 1e-6)
        self.stdout.write(f"Received in {elapsed:.1f} s ({size / elapsed / 1e6:.0f} MB/s).")
        if options["background"]:
            self.stdout.write("The workers inspect and store it; follow it in the console or the API.")
            return
        if UploadSession.objects.filter(image=image).exclude(compression="").exists():
            # A compressed file was staged as read: decompress it here into inspection and storing.
            import_decompress(image_id=image.pk, enqueue=False)
            image.refresh_from_db()
            if image.status != Image.Status.UPLOADING:
                raise CommandError(f"The import failed: {image.error}")
        if needs_conversion(image.source_format):
            import_convert(image_id=image.pk)
        else:
            import_finish(image_id=image.pk)
        image.refresh_from_db()
        if image.status != Image.Status.AVAILABLE:
            raise CommandError(f"The import failed: {image.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Available: {image.pk} {image.disk_format}, {image.size} bytes, SHA256 {image.sha256} "
                f"({time.monotonic() - started:.1f} s in all)."
            )
        )
        self._say_checksum(image)

    def _tenant_and_user(self, options):
        tenant = Tenant.objects.filter(name=options["tenant"]).first()
        if tenant is None and options["tenant"].isdigit():
            tenant = Tenant.objects.filter(pk=int(options["tenant"])).first()
        if tenant is None:
            raise CommandError(f"No tenant named {options['tenant']!r}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user named {options['user']!r}.")
        return tenant, user

    def handle_url(self, options):
        """A URL import: created here, fetched by the imports workers; waits unless --background."""
        from images.fetch import redact

        tenant, user = self._tenant_and_user(options)
        iso = options["format"] == "iso" or options["kind"] == "iso"
        data = self.form_data(tenant, options)
        data.update(import_method="url", url=options["url"])
        form = ImageImportForm(data, tenant=tenant, membership=None, user=user, iso=iso)
        if not form.is_valid():
            lines = [f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()]
            raise CommandError("The image was not created:\n  " + "\n  ".join(lines))
        try:
            image = image_import_create(
                tenant=tenant, fields=form.image_fields(), actor=user, url=form.cleaned_data["url"]
            )
        except Exception as error:  # noqa: BLE001 - ValidationError, quota, space: said plainly
            raise CommandError(" ".join(getattr(error, "messages", [str(error)]))) from error
        self.stdout.write(
            f"Image {image.pk} “{image.name}”: fetching {redact(options['url'])} in the workers…"
        )
        if options["background"]:
            self.stdout.write("Follow it in the console or the API.")
            return
        shown = None
        while image.status == Image.Status.UPLOADING:
            time.sleep(1)
            image.refresh_from_db()
            line = f"{image.get_stage_display()} {image.progress}% ({image.bytes_done} bytes)"
            if line != shown:
                self.stdout.write(line)
                shown = line
        if image.status != Image.Status.AVAILABLE:
            raise CommandError(f"The import failed: {image.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Available: {image.pk} {image.disk_format}, {image.size} bytes, SHA256 {image.sha256}."
            )
        )
        self._say_checksum(image)

    def _say_checksum(self, image) -> None:
        if image.checksum_verified_at:
            self.stdout.write(
                f"Checksum verified: {image.get_checksum_algorithm_display()} {image.checksum_expected} "
                f"({image.get_checksum_source_display()})."
            )

    def form_data(self, tenant, options) -> dict:
        storage = None
        if options["storage"]:
            storage = ImageStorage.objects.filter(name=options["storage"]).first()
            if storage is None:
                raise CommandError(f"No storage named {options['storage']!r}.")
        else:
            from storage.selectors import storage_choices_for_import

            storage = storage_choices_for_import(tenant=tenant).first()
            if storage is None:
                raise CommandError("No storage is open to imports; add one with manage.py addstorage.")
        group = None
        if options["project_group"]:
            group = ProjectGroup.objects.filter(tenant=tenant, name=options["project_group"]).first()
            if group is None:
                raise CommandError(f"Tenant {tenant.name} has no project group {options['project_group']!r}.")
        boot_mode = options["boot_mode"] or (
            "uefi" if options["architecture"] in ("aarch64", "mips64el") else "bios"
        )
        data = {
            "name": options["name"],
            "description": options["description"],
            "kind": options["kind"] or ("iso" if options["format"] == "iso" else "system"),
            "disk_format": options["format"],
            "import_method": "upload",
            "os_type": options["os_type"],
            "architecture": options["architecture"],
            "boot_mode": boot_mode,
            "platform": options["platform"],
            "os_version": options["os_version"],
            "labels": ",".join(options["label"]),
            "storage": storage.pk,
            "sha256": options["sha256"],
            "checksum": options["checksum"],
            "checksum_algorithm": options["checksum_algorithm"],
            "checksum_of": options["checksum_of"],
            "checksum_file_url": options["checksum_file_url"],
            "checksum_signature_url": options["checksum_signature_url"],
            "file_name": os.path.basename(options["file"] or ""),
        }
        for flag in ("csm", "cloud_init", "qemu_ga", "hot_upgrade"):
            if options[flag]:
                data[flag] = "on"
        if not options["no_virtio"]:
            data["virtio"] = "on"
        if group is not None:
            data["project_group"] = group.pk
        if options["target_size_gb"]:
            data["target_size_gb"] = options["target_size_gb"]
        return data
