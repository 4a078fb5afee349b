"""The import wizard's form. The API's create validates with the same form, so both say the same."""

import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from storage.selectors import storage_choices_for_import
from tenants.selectors import project_groups_visible

from . import catalog
from .models import Image
from .services.lifecycle import DESCRIPTION_MAX_LENGTH, clean_labels

SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

DISK_FORMATS = [(value, label) for value, label in Image.DiskFormat.choices if value != Image.DiskFormat.ISO]


class LabelsField(forms.Field):
    """Labels as a list of strings (the API) or as comma-separated text (the wizard), cleaned by the same
    rule as an edit's (`clean_labels`)."""

    default_error_messages = {"type": _("Labels must be a list of strings.")}

    def to_python(self, value):
        if value in (None, ""):
            return []
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, list | tuple):
            raise forms.ValidationError(self.error_messages["type"], code="labels_type")
        try:
            return clean_labels(value)
        except ValidationError as error:
            raise forms.ValidationError(error.messages, code=error.code) from None

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list | tuple) else value


def _style_widgets(form) -> None:
    """Bootstrap's classes on the widgets, set here so that every rendering has them (a script that
    added them on page load missed the fields the wizard re-renders after an error)."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, forms.CheckboxInput | forms.RadioSelect | forms.HiddenInput):
            continue
        css = "form-select" if isinstance(widget, forms.Select) else "form-control"
        widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()


class ImageImportForm(forms.Form):
    """Every field of the import wizard (seeds 000/004 section 4.3 and seed 002 "Add Image").

    `iso=True` is the ISO images wizard: kind and format are ISO, and the agent features do not apply.
    """

    name = forms.CharField(
        label=_("Name"),
        max_length=catalog.NAME_MAX_LENGTH + 1,
        strip=False,
        validators=[catalog.validate_image_name],
    )
    description = forms.CharField(
        label=_("Description"),
        max_length=DESCRIPTION_MAX_LENGTH,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    kind = forms.ChoiceField(
        label=_("Image type"),
        choices=[(Image.Kind.SYSTEM, Image.Kind.SYSTEM.label), (Image.Kind.VOLUME, Image.Kind.VOLUME.label)],
        initial=Image.Kind.SYSTEM,
    )
    disk_format = forms.ChoiceField(
        label=_("Format"),
        choices=DISK_FORMATS,
        initial=Image.DiskFormat.QCOW2,
        help_text=_("vmdk, vhd, vhdx and ova files are converted to the storage's format after the upload."),
    )
    import_method = forms.ChoiceField(
        label=_("Import method"),
        choices=[
            ("upload", pgettext_lazy("Import method", "Local file")),
            ("url", pgettext_lazy("Import method", "URL")),
        ],
        initial="upload",
        widget=forms.RadioSelect,
    )
    url = forms.CharField(
        label=_("Image address"),
        required=False,
        max_length=2048,
        help_text=_(
            "http(s)://host[:port]/path/file, ftp://[user:password@]host[:port]/path/file, "
            "sftp://user[:password]@host[:port]/path/file; file:///path/file for administrators."
        ),
    )
    file_size = forms.IntegerField(widget=forms.HiddenInput, required=False, min_value=0)
    os_type = forms.ChoiceField(
        label=_("Operating system"), choices=Image.OSType.choices, initial=Image.OSType.LINUX
    )
    architecture = forms.ChoiceField(
        label=_("System architecture"), choices=Image.Architecture.choices, initial=Image.Architecture.X86_64
    )
    boot_mode = forms.ChoiceField(
        label=_("Boot mode"),
        choices=Image.BootMode.choices,
        initial=Image.BootMode.BIOS,
        help_text=_("aarch64 and mips64el images boot with UEFI."),
    )
    csm = forms.BooleanField(
        label=_("Enable CSM"),
        required=False,
        help_text=_(
            "For UEFI images whose OS does not fully support UEFI; required for Windows 7 and Windows Server 2008 R2."
        ),
    )
    platform = forms.CharField(
        label=_("System platform"),
        max_length=catalog.PLATFORM_MAX_LENGTH,
        required=False,
        help_text=_("Choose a suggestion or type any platform."),
    )
    os_version = forms.CharField(
        label=_("System version"),
        max_length=catalog.VERSION_MAX_LENGTH,
        required=False,
        help_text=_("Choose a suggestion or type any version."),
    )
    cloud_init = forms.BooleanField(label=_("cloud-init"), required=False)
    qemu_ga = forms.BooleanField(label=_("qemu-ga"), required=False)
    hot_upgrade = forms.BooleanField(label=_("Hot upgrade"), required=False)
    virtio = forms.BooleanField(
        label=_("VirtIO"),
        required=False,
        initial=True,
        help_text=_("Attach VirtIO disk and network drivers."),
    )
    labels = LabelsField(label=_("Labels"), required=False, help_text=_("Separate labels with commas."))
    project_group = forms.ModelChoiceField(label=_("Project group"), queryset=None, required=False)
    storage = forms.ModelChoiceField(
        label=_("Image storage"),
        queryset=None,
        error_messages={"required": _("Choose the image storage to import into.")},
    )
    target_size_gb = forms.IntegerField(
        label=_("Target image size (GB)"),
        required=False,
        min_value=catalog.TARGET_SIZE_MIN_GB,
        max_value=catalog.TARGET_SIZE_MAX_GB,
        help_text=_("20 GB to 500 GB. The image's virtual size must fit in it."),
    )
    sha256 = forms.CharField(
        label=_("SHA256"),
        required=False,
        max_length=64 + 2,
        help_text=_("Optional: the file's SHA256, to verify it arrived intact."),
    )
    # An expected checksum (images.checksums): typed, or taken from a checksum file; see README "Checksums".
    checksum = forms.CharField(
        label=_("Expected checksum"),
        required=False,
        max_length=128 + 2,
        help_text=_("Optional: the checksum the publisher gives, to verify the file arrived intact."),
    )
    checksum_algorithm = forms.ChoiceField(
        label=_("Checksum algorithm"),
        required=False,
        choices=[("", _("By its length")), *Image.ChecksumAlgorithm.choices],
        initial=Image.ChecksumAlgorithm.SHA256,
    )
    checksum_of = forms.ChoiceField(
        label=_("The checksum covers"),
        required=False,
        choices=Image.ChecksumOf.choices,
        initial=Image.ChecksumOf.SENT,
        help_text=_("As sent: compressed, if it was. The same bytes for a file that is not compressed."),
    )
    checksum_file_url = forms.CharField(
        label=_("Checksum file URL"),
        required=False,
        max_length=2048,
        help_text=_(
            "Instead of a typed checksum: SHA256SUMS, SHA512SUMS or CHECKSUM; the line for the image's file "
            "name is used (it covers the file as sent)."
        ),
    )
    checksum_signature_url = forms.CharField(
        label=_("Signature URL"),
        required=False,
        max_length=2048,
        help_text=_(
            "Optional: the checksum file's detached OpenPGP signature (SHA256SUMS.gpg), verified against "
            "the signing keys administrators trust."
        ),
    )
    file_name = forms.CharField(widget=forms.HiddenInput, required=False, max_length=255)

    def __init__(self, data=None, *, tenant, membership, user, iso: bool = False, **kwargs):
        super().__init__(data, **kwargs)
        self.tenant = tenant
        self.membership = membership
        self.user = user
        self.iso = iso
        self.fields["project_group"].queryset = project_groups_visible(tenant=tenant, membership=membership)
        storages = storage_choices_for_import(tenant=tenant)
        self.fields["storage"].queryset = storages
        first = storages.first()
        if first is not None:
            self.fields["storage"].initial = first.pk
        if iso:
            # An ISO is stored as it is: no conversion, so no target size; no agents to declare.
            for name in ("kind", "disk_format", "cloud_init", "qemu_ga", "hot_upgrade", "target_size_gb"):
                del self.fields[name]
        self.fields["platform"].widget.attrs.update({"list": "platform-options", "autocomplete": "off"})
        self.fields["os_version"].widget.attrs.update({"list": "os-version-options", "autocomplete": "off"})
        _style_widgets(self)

    def _post_clean(self):
        super()._post_clean()
        for name in self.errors:
            if name in self.fields:
                widget = self.fields[name].widget
                widget.attrs["class"] = f"{widget.attrs.get('class', '')} is-invalid".strip()

    def clean_sha256(self):
        value = self.cleaned_data["sha256"].strip().lower()
        if value and not SHA256_RE.match(value):
            raise forms.ValidationError(
                _("A SHA256 is 64 hexadecimal characters (0-9, a-f); this one is not."), code="sha256"
            )
        return value

    def clean(self):
        data = super().clean()
        self._clean_source(data)
        if self.iso:
            data["kind"] = Image.Kind.ISO
            data["disk_format"] = Image.DiskFormat.ISO
        if data.get("kind") != Image.Kind.VOLUME:
            self._clean_system(data)
        self._clean_checksum(data)  # last: a checksum file is fetched only for an otherwise good form
        return data

    def _clean_source(self, data):
        if data.get("import_method") != "url":
            data["url"] = ""
            return
        url = data.get("url", "").strip()
        if not url:
            self.add_error(
                "url", forms.ValidationError(_("Give the URL to import the image from."), code="required")
            )
            return
        from .fetch import URLRefused, validate

        try:
            validate(url, allow_file=bool(self.user and self.user.is_staff))
        except URLRefused as error:
            self.add_error("url", forms.ValidationError(str(error), code="url_refused"))
        data["url"] = url

    def _clean_checksum(self, data):
        """The expected checksum: typed (`checksum`, or the older `sha256`, of the decompressed image), or
        the entry for the file's name in a checksum file, fetched now so that a missing entry or a bad
        signature is said at once."""
        from .checksums import ChecksumError, algorithm_for_length, clean_value, file_name_of

        data["checksum_fields"] = {}
        typed = (data.get("checksum") or "").strip().lower()
        file_url = (data.get("checksum_file_url") or "").strip()
        signature_url = (data.get("checksum_signature_url") or "").strip()
        if typed and file_url:
            self.add_error(
                "checksum_file_url",
                forms.ValidationError(
                    _("Give either a checksum or a checksum file URL, not both."), code="checksum_both"
                ),
            )
            return
        if signature_url and not file_url:
            self.add_error(
                "checksum_signature_url",
                forms.ValidationError(
                    _("A signature is of a checksum file: give the checksum file URL too."),
                    code="signature_alone",
                ),
            )
            return
        if typed:
            algorithm = data.get("checksum_algorithm") or algorithm_for_length(typed) or "sha256"
            try:
                value = clean_value(typed, algorithm)
            except ChecksumError as error:
                self.add_error("checksum", forms.ValidationError(error.message, code=error.code))
                return
            data["checksum_fields"] = {
                "checksum_algorithm": algorithm,
                "checksum_expected": value,
                "checksum_of": data.get("checksum_of") or Image.ChecksumOf.SENT,
                "checksum_source": Image.ChecksumSource.TYPED,
            }
        elif data.get("sha256"):
            data["checksum_fields"] = {
                "checksum_algorithm": "sha256",
                "checksum_expected": data["sha256"],
                "checksum_of": Image.ChecksumOf.IMAGE,
                "checksum_source": Image.ChecksumSource.TYPED,
            }
        elif file_url:
            self._resolve_checksum_file(data, file_url, signature_url, file_name_of)

    def _resolve_checksum_file(self, data, file_url, signature_url, file_name_of):
        from .checksums import ChecksumError
        from .fetch import URLRefused, validate
        from .services.checksum_files import resolve_checksum_file

        allow_file = bool(self.user and self.user.is_staff)
        for field, url in (("checksum_file_url", file_url), ("checksum_signature_url", signature_url)):
            if not url:
                continue
            try:
                validate(url, allow_file=allow_file)
            except URLRefused as error:
                self.add_error(field, forms.ValidationError(str(error), code="url_refused"))
        if self.errors:
            return  # fetch the checksum file only for an otherwise good form
        if data.get("import_method") == "url":
            name = file_name_of(data.get("url", ""))
        else:
            name = (data.get("file_name") or "").strip().replace("\\", "/").rsplit("/", 1)[-1]
        if not name:
            self.add_error(
                "checksum_file_url",
                forms.ValidationError(
                    _("The image's file name is needed to find its line in the checksum file (file_name)."),
                    code="file_name_missing",
                ),
            )
            return
        try:
            resolved = resolve_checksum_file(
                file_url, name=name, signature_url=signature_url, allow_file=allow_file
            )
        except ChecksumError as error:
            field = "checksum_signature_url" if error.code.startswith("signature") else "checksum_file_url"
            self.add_error(field, forms.ValidationError(error.message, code=error.code))
            return
        data["checksum_fields"] = {
            "checksum_algorithm": resolved.algorithm,
            "checksum_expected": resolved.value,
            "checksum_of": Image.ChecksumOf.SENT,
            "checksum_source": resolved.source,
            "checksum_file_url": resolved.file_url,
            "checksum_signature_url": resolved.signature_url,
            "checksum_signer": resolved.signer,
        }

    def _clean_system(self, data):
        """UEFI for aarch64 and mips64el, CSM for the Windows releases that need it. Platform and version
        are free text: the catalogue only suggests them."""
        architecture = data.get("architecture")
        data["platform"] = (data.get("platform") or "").strip()
        version = (data.get("os_version") or "").strip()
        data["os_version"] = version
        if architecture in catalog.UEFI_ONLY_ARCHITECTURES and data.get("boot_mode") != Image.BootMode.UEFI:
            self.add_error(
                "boot_mode",
                forms.ValidationError(
                    _("%(arch)s images boot with UEFI: choose UEFI."),
                    code="uefi_required",
                    params={"arch": architecture},
                ),
            )
        if data.get("boot_mode") != Image.BootMode.UEFI:
            data["csm"] = False
        elif version in catalog.CSM_REQUIRED_WITH_UEFI and not data.get("csm"):
            self.add_error(
                "csm",
                forms.ValidationError(
                    _("%(version)s boots with UEFI only with CSM enabled."),
                    code="csm_required",
                    params={"version": version},
                ),
            )

    def image_fields(self) -> dict:
        """Keyword arguments for the Image this form describes."""
        data = self.cleaned_data
        volume = data.get("kind") == Image.Kind.VOLUME
        fields = {
            "name": data["name"],
            "description": data.get("description", ""),
            "kind": data["kind"],
            "disk_format": data["disk_format"],
            "source_format": data["disk_format"],
            "labels": data.get("labels", []),
            "project_group": data.get("project_group"),
            "storage": data["storage"],
            "expected_sha256": data.get("sha256", ""),
            **data.get("checksum_fields", {}),
            "target_size": data["target_size_gb"] * catalog.GiB if data.get("target_size_gb") else None,
            "source": Image.Source.URL if data.get("import_method") == "url" else Image.Source.UPLOAD,
        }
        if volume:
            fields.update(
                os_type=Image.OSType.OTHER, platform="", os_version="", virtio=data.get("virtio", True)
            )
        else:
            fields.update(
                os_type=data["os_type"],
                platform=data.get("platform", ""),
                os_version=data.get("os_version", ""),
                architecture=data["architecture"],
                boot_mode=data["boot_mode"],
                csm=data.get("csm", False),
                virtio=data.get("virtio", False),
                cloud_init=data.get("cloud_init", False),
                qemu_ga=data.get("qemu_ga", False),
                hot_upgrade=data.get("hot_upgrade", False),
            )
        return fields
