"""Forms of the storage admin: add (per kind), modify configuration, update password, sync or migrate."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import GiB, ImageStorage


def _model_field(name):
    return ImageStorage._meta.get_field(name)


class GiBField(forms.DecimalField):
    """A size entered in GiB, cleaned to bytes."""

    def __init__(self, *, label, help_text="", **kwargs):
        super().__init__(
            label=label, help_text=help_text, min_value=Decimal(0), max_digits=12, decimal_places=2, **kwargs
        )

    def clean(self, value):
        cleaned = super().clean(value)
        return None if cleaned is None else int(cleaned * GiB)

    def prepare_value(self, value):
        if isinstance(value, int):
            return (Decimal(value) / GiB).quantize(Decimal("0.01"))
        return value


def _concurrency(name):
    field = _model_field(name)
    return forms.IntegerField(
        label=field.verbose_name.capitalize(),
        min_value=1,
        max_value=16,
        initial=1,
        help_text=_("Blobs transferred at once, 1 to 16."),
    )


class _ConfigurationFields(forms.Form):
    reserved_bytes = GiBField(
        label=_("Reserved capacity (GiB)"),
        initial=GiB,  # bytes, as the model keeps it: shown as 1.00
        help_text=_("Capacity kept free on the storage; an import that would use it is refused."),
    )
    upload_concurrency = _concurrency("upload_concurrency")
    download_concurrency = _concurrency("download_concurrency")
    target_format = forms.ChoiceField(
        label=_("Target format"),
        required=False,
        choices=[
            ("", _("Default (standalone: qcow2, distributed: raw)")),
            *ImageStorage.TargetFormat.choices,
        ],
        help_text=_("Format converted images are stored in."),
    )


class _BasicFields(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=128)
    description = forms.CharField(label=_("Description"), max_length=255, required=False)
    data_center = forms.CharField(label=_("Data center"), max_length=64, initial="default", required=False)


class StandaloneLocationFields(forms.Form):
    mount_path = forms.CharField(
        label=_("Mount path"),
        max_length=512,
        help_text=_(
            "Absolute path of a directory on the workers (local disk or a mount shared by every worker). "
            "Created when missing. Not /, /dev, /proc, /sys, /usr/bin or /bin."
        ),
    )


class DistributedLocationFields(forms.Form):
    endpoint_url = forms.URLField(
        assume_scheme="https",
        label=_("Endpoint URL"),
        help_text=_("The S3-compatible endpoint, such as https://rgw.example.com."),
    )
    region = forms.CharField(label=_("Region"), max_length=64, required=False, initial="us-east-1")
    bucket = forms.CharField(label=_("Bucket"), max_length=63, help_text=_("Created when it does not exist."))
    access_key = forms.CharField(label=_("Access key"), max_length=128)
    capacity_bytes = GiBField(
        label=_("Capacity (GiB)"),
        initial=1024,
        help_text=_("The space this storage may use in the bucket; S3 reports no size of its own."),
    )


class SecretKeyField(forms.CharField):
    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Secret key"))
        kwargs.setdefault("help_text", _("Kept encrypted and never shown again."))
        super().__init__(strip=False, **kwargs)


class StandaloneAddForm(_BasicFields, StandaloneLocationFields, _ConfigurationFields):
    field_order = ["name", "description", "data_center", "mount_path"]


class DistributedAddForm(_BasicFields, DistributedLocationFields, _ConfigurationFields):
    secret_key = SecretKeyField()
    field_order = [
        "name",
        "description",
        "data_center",
        "endpoint_url",
        "region",
        "bucket",
        "access_key",
        "secret_key",
    ]


class PasswordField(forms.CharField):
    widget = forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})

    def __init__(self, **kwargs):
        kwargs.setdefault("label", _("Password"))
        super().__init__(strip=False, **kwargs)


class ServerLocationFields(forms.Form):
    mount_path = forms.CharField(
        label=_("Mount path"),
        max_length=512,
        help_text=_(
            "Absolute path of a directory on the storage server. Created when missing; with Free disk, the "
            "disk is mounted there. Not /, /dev, /proc, /sys, /usr/bin or /bin."
        ),
    )
    sync_network = forms.CharField(
        label=_("Image sync network"),
        max_length=64,
        required=False,
        help_text=_(
            "CIDR of the network storage servers use to synchronise images, such as 10.0.1.0/24; when both "
            "storages set it, the target's is used."
        ),
    )
    data_network = forms.CharField(
        label=_("Data network"),
        max_length=64,
        required=False,
        help_text=_(
            "CIDR of the network compute nodes use to read images from this storage; empty: the "
            "management network. When set, a compute host that cannot reach the server there fails the "
            "upload instead of using the management network."
        ),
    )


class ServerAddForm(_BasicFields, ServerLocationFields, _ConfigurationFields):
    """Adding a storage server: the four steps of the product's form as sections of one page. With the
    addition method Free disk the console first lists the server's free disks; the form comes back with
    them to choose one and confirm that everything on it is erased."""

    host = forms.GenericIPAddressField(label=_("Image storage IP"))
    ssh_port = forms.IntegerField(label=_("SSH port"), initial=22, min_value=1, max_value=65535)
    ssh_username = forms.CharField(
        label=_("Username"),
        max_length=64,
        initial="root",
        help_text=_("root, or a user with the rights the README lists."),
    )
    password = PasswordField(
        help_text=_(
            "Used once to install a key of the console's own, then kept encrypted for Reconnect after "
            "Update password."
        )
    )
    addition_method = forms.ChoiceField(
        label=_("Addition method"),
        choices=ImageStorage.AdditionMethod.choices,
        initial=ImageStorage.AdditionMethod.LOCAL_DIRECTORY,
        widget=forms.RadioSelect,
    )
    disk = forms.ChoiceField(label=_("Free disk"), required=False, choices=[])
    confirm_erase = forms.BooleanField(
        label=_("Erase the disk"),
        required=False,
        help_text=_(
            "All data on the chosen disk is erased: it is partitioned, formatted (ext4) and mounted."
        ),
    )

    sections = [
        (_("Basic information"), ["name", "description", "data_center"]),
        (_("Server and credentials"), ["host", "ssh_port", "ssh_username", "password"]),
        (_("Disk configuration"), ["addition_method", "mount_path", "disk", "confirm_erase"]),
        (
            _("Advanced settings"),
            [
                "sync_network",
                "data_network",
                "reserved_bytes",
                "upload_concurrency",
                "download_concurrency",
                "target_format",
            ],
        ),
    ]

    field_order = [name for _title, names in sections for name in names]

    def __init__(self, *args, disks=None, **kwargs):
        super().__init__(*args, **kwargs)
        from django.template.defaultfilters import filesizeformat

        self.disks_listed = disks is not None
        if disks:
            self.fields["disk"].choices = [
                (disk["path"], f"{disk['path']} ({filesizeformat(disk['size'])})") for disk in disks
            ]
        elif self.data and self.data.get("disk"):
            value = self.data["disk"]
            self.fields["disk"].choices = [(value, value)]

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("addition_method") == ImageStorage.AdditionMethod.FREE_DISK and cleaned.get("disk"):
            if not cleaned.get("confirm_erase"):
                self.add_error(
                    "confirm_erase",
                    forms.ValidationError(
                        _("Confirm that all data on %(disk)s is erased.") % {"disk": cleaned["disk"]},
                        code="confirm",
                    ),
                )
        return cleaned


class ServerConfigureForm(ServerLocationFields, _ConfigurationFields):
    pass


class ServerPasswordForm(forms.Form):
    password = PasswordField(label=_("New password"), help_text=_("Kept encrypted and never shown again."))
    confirm = PasswordField(label=_("New password again"))

    error_messages = {"mismatch": _("The two passwords differ.")}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("password") and cleaned.get("password") != cleaned.get("confirm"):
            raise forms.ValidationError(self.error_messages["mismatch"], code="mismatch")
        return cleaned


class StandaloneConfigureForm(StandaloneLocationFields, _ConfigurationFields):
    pass


class DistributedConfigureForm(DistributedLocationFields, _ConfigurationFields):
    pass


ADD_FORMS = {
    ImageStorage.Kind.STANDALONE: StandaloneAddForm,
    ImageStorage.Kind.DISTRIBUTED: DistributedAddForm,
    ImageStorage.Kind.SERVER: ServerAddForm,
}
CONFIGURE_FORMS = {
    ImageStorage.Kind.STANDALONE: StandaloneConfigureForm,
    ImageStorage.Kind.DISTRIBUTED: DistributedConfigureForm,
    ImageStorage.Kind.SERVER: ServerConfigureForm,
}


class UpdatePasswordForm(forms.Form):
    secret_key = SecretKeyField(label=_("New secret key"))
    confirm = SecretKeyField(label=_("New secret key again"), help_text="")

    error_messages = {"mismatch": _("The two secret keys differ.")}

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("secret_key") and cleaned.get("secret_key") != cleaned.get("confirm"):
            raise forms.ValidationError(self.error_messages["mismatch"], code="mismatch")
        return cleaned
