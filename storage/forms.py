"""Forms of the storage admin: add (per kind; a storage server in the steps of SERVER_ADD_STEPS), modify
configuration, update password."""

from decimal import Decimal

from django import forms
from django.utils.text import capfirst
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
        label=capfirst(field.verbose_name),  # lazy: translated when shown, not at import
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


class ServerBasicForm(_BasicFields):
    """Step 1 of adding a storage server: basic information."""


class ServerLoginForm(forms.Form):
    """Step 2: the server and the credentials; the console logs in with them before step 3."""

    host = forms.GenericIPAddressField(label=_("Image storage IP"))
    ssh_port = forms.IntegerField(label=_("SSH port"), initial=22, min_value=1, max_value=65535)
    ssh_username = forms.CharField(
        label=_("Username"),
        max_length=64,
        initial="root",
        help_text=_("root, or a user with the rights the README lists."),
    )
    password = PasswordField(
        required=False,
        help_text=_(
            "Used once to install a key of the console's own, then kept encrypted for Reconnect after "
            "Update password."
        ),
    )


class ServerDiskForm(forms.Form):
    """Step 3: disk configuration. The free disks are those the server listed over the login of step 2."""

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
    mount_path = ServerLocationFields.base_fields["mount_path"]
    retrieve_existing = forms.BooleanField(
        label=_("Retrieve existing images"),
        required=False,
        help_text=_(
            "Once the storage is added, go on to import the image files already under the mount path."
        ),
    )

    error_messages = {
        "choose_disk": _(
            "Choose the disk to format and mount at the mount path; everything on it is erased."
        ),
        "no_free_disk": _("The server has no free disk (one without partitions, file systems or mounts)."),
        "confirm": _("Confirm that all data on %(disk)s is erased."),
    }

    def __init__(self, *args, disks=None, **kwargs):
        super().__init__(*args, **kwargs)
        from django.template.defaultfilters import filesizeformat

        self.disks = disks or []
        self.fields["disk"].choices = [("", "---------")] + [
            (disk["path"], f"{disk['path']} ({filesizeformat(disk['size'])})") for disk in self.disks
        ]

    def clean_mount_path(self):
        from .backends import StorageError
        from .backends.standalone import check_mount_path

        value = self.cleaned_data["mount_path"]
        try:
            return str(check_mount_path(value, local=False))
        except StorageError as error:
            raise forms.ValidationError(str(error), code="mount_path") from error

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("addition_method") != ImageStorage.AdditionMethod.FREE_DISK:
            cleaned["disk"] = ""
            cleaned["confirm_erase"] = False
            return cleaned
        if not self.disks:
            self.add_error(
                "disk", forms.ValidationError(self.error_messages["no_free_disk"], code="no_free_disk")
            )
        elif not cleaned.get("disk"):
            self.add_error("disk", forms.ValidationError(self.error_messages["choose_disk"], code="required"))
        elif not cleaned.get("confirm_erase"):
            self.add_error(
                "confirm_erase",
                forms.ValidationError(
                    self.error_messages["confirm"] % {"disk": cleaned["disk"]}, code="confirm"
                ),
            )
        return cleaned


class ServerAdvancedForm(_ConfigurationFields):
    """Step 4: advanced settings."""

    sync_network = ServerLocationFields.base_fields["sync_network"]
    data_network = ServerLocationFields.base_fields["data_network"]

    field_order = ["sync_network", "data_network"]

    error_messages = {"cidr": _("Enter a network in CIDR notation, such as 10.0.1.0/24.")}

    def _clean_network(self, name):
        import ipaddress

        value = self.cleaned_data[name]
        if not value:
            return value
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError as error:
            raise forms.ValidationError(self.error_messages["cidr"], code="cidr") from error

    def clean_sync_network(self):
        return self._clean_network("sync_network")

    def clean_data_network(self):
        return self._clean_network("data_network")


# The steps of adding a storage server, as the product's Add Image Storage dialog has them (seed 003).
SERVER_ADD_STEPS = [
    ("basic", _("Basic information"), ServerBasicForm),
    ("server", _("Server and credentials"), ServerLoginForm),
    ("disk", _("Disk configuration"), ServerDiskForm),
    ("advanced", _("Advanced settings"), ServerAdvancedForm),
]


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
