from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Image
from ..services.lifecycle import DESCRIPTION_MAX_LENGTH, LABELS_MAX
from .lifecycle import ImageSerializer


class UploadInfoSerializer(serializers.Serializer):
    put_url = serializers.CharField(help_text="PUT the file's bytes here (Content-Length required).")
    tus_endpoint = serializers.CharField(
        help_text="tus 1.0 creation endpoint; Upload-Metadata carries image_id."
    )
    tus_url = serializers.CharField(
        allow_null=True,
        help_text="The tus upload resource of this image (HEAD for the offset, PATCH to continue), also "
        "after a PUT whose body ended early.",
    )
    offset = serializers.IntegerField(help_text="Bytes received and kept so far.")
    length = serializers.IntegerField(allow_null=True, help_text="The upload's length, once announced.")


class ImportedImageSerializer(ImageSerializer):
    """The list's image, plus what an import's client needs: where to send the bytes, how far it got."""

    upload = serializers.SerializerMethodField()

    class Meta(ImageSerializer.Meta):
        fields = [
            *ImageSerializer.Meta.fields,
            "target_size",
            "expected_sha256",
            "bytes_done",
            "bytes_total",
            "bytes_per_second",
            "upload",
        ]
        read_only_fields = fields

    @extend_schema_field(UploadInfoSerializer(allow_null=True))
    def get_upload(self, image) -> dict | None:
        if image.source != Image.Source.UPLOAD or image.status != Image.Status.UPLOADING:
            return None
        session = getattr(image, "upload", None)
        return {
            "put_url": reverse("api-image-file", args=[image.pk]),
            "tus_endpoint": reverse("api-uploads"),
            "tus_url": reverse("api-upload", args=[session.pk]) if session else None,
            "offset": session.offset if session else 0,
            "length": session.length if session else None,
        }


class ImageCreateSerializer(serializers.Serializer):
    """The fields of `POST /api/v1/images/` (validated by the import wizard's own form)."""

    name = serializers.CharField(max_length=128)
    description = serializers.CharField(required=False, allow_blank=True, max_length=DESCRIPTION_MAX_LENGTH)
    kind = serializers.ChoiceField(
        choices=Image.Kind.choices, required=False, help_text="Default: iso for disk_format iso, else system."
    )
    disk_format = serializers.ChoiceField(choices=Image.DiskFormat.choices)
    os_type = serializers.ChoiceField(
        choices=Image.OSType.choices, required=False, help_text="Default: other."
    )
    architecture = serializers.ChoiceField(
        choices=Image.Architecture.choices, required=False, help_text="Default: x86_64."
    )
    boot_mode = serializers.ChoiceField(
        choices=Image.BootMode.choices,
        required=False,
        help_text="Default: uefi for aarch64 and mips64el, else bios.",
    )
    csm = serializers.BooleanField(required=False)
    platform = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="Free text, e.g. Ubuntu, Debian, Rocky Linux, Windows; the console only suggests names.",
    )
    os_version = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=32,
        help_text="Free text, e.g. 24.04, 12, Windows Server 2022.",
    )
    virtio = serializers.BooleanField(required=False, default=True)
    cloud_init = serializers.BooleanField(required=False)
    qemu_ga = serializers.BooleanField(required=False)
    hot_upgrade = serializers.BooleanField(required=False)
    labels = serializers.ListField(child=serializers.CharField(), required=False, max_length=LABELS_MAX)
    project_group = serializers.IntegerField(required=False, allow_null=True)
    storage = serializers.IntegerField(
        required=False, help_text="Default: the first storage open to imports."
    )
    sha256 = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Older form of checksum: a SHA256 (64 hex digits) of the image after decompression.",
    )
    checksum = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="An expected checksum (hex) to verify the import against; see checksum_algorithm and "
        "checksum_of. A mismatch fails the import, naming both values, and keeps nothing.",
    )
    checksum_algorithm = serializers.ChoiceField(
        choices=Image.ChecksumAlgorithm.choices,
        required=False,
        allow_blank=True,
        help_text="md5, sha1, sha256 or sha512. Default: told by the checksum's length.",
    )
    checksum_of = serializers.ChoiceField(
        choices=Image.ChecksumOf.choices,
        required=False,
        help_text="Which bytes the checksum covers: `sent` (default), the file as uploaded or downloaded, "
        "compressed if it is (what a distribution's SHA256SUMS lists); `image`, the image after "
        "decompression. The same bytes for a file that is not compressed.",
    )
    checksum_file_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="Instead of checksum: a checksum file (SHA256SUMS, SHA512SUMS, CHECKSUM; GNU `hash  name` "
        "or BSD `SHA256 (name) = hash` lines), fetched at once; the line for the file's name (the URL's "
        "last path segment, or file_name for an upload) is used, as a checksum of the file as sent. No "
        "such line: a 400.",
    )
    checksum_signature_url = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="With checksum_file_url: its detached OpenPGP signature, verified against the signing "
        "keys administrators trust; a bad or untrusted signature is a 400.",
    )
    file_name = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="An upload's file name, to find its line in checksum_file_url.",
    )
    target_size_gb = serializers.IntegerField(required=False, allow_null=True, min_value=20, max_value=500)
    source = serializers.ChoiceField(choices=["upload", "url"], default="upload")
    url = serializers.CharField(required=False, allow_blank=True, help_text="With source=url.")
    size = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        help_text="The file's size, to check quota and space now.",
    )
