from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ComputeHost
from .services.vms import DISK_MAX_GB, MEMORY_MAX_MIB, MEMORY_MIN_MIB, VCPUS_MAX


class VMCreateForm(forms.Form):
    """The Create VM wizard; every rule is checked by `vm_create`, whose errors land next to the fields."""

    name = forms.CharField(
        label=_("Name"), max_length=63, help_text=_("Letters, digits and hyphens; also the guest's hostname.")
    )
    host = forms.ChoiceField(label=_("Host"), required=False)
    vcpus = forms.IntegerField(label=_("vCPUs"), min_value=1, max_value=VCPUS_MAX, initial=1)
    memory_mib = forms.IntegerField(
        label=_("Memory (MiB)"), min_value=MEMORY_MIN_MIB, max_value=MEMORY_MAX_MIB, initial=512
    )
    disk_gb = forms.IntegerField(label=_("Disk (GB)"), min_value=1, max_value=DISK_MAX_GB)
    network = forms.ChoiceField(label=_("Network"), required=False)
    admin_password = forms.CharField(
        label=_("Administrator password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("Overrides the image's password: handed to the guest by cloud-init. Leave empty to keep it."),
    )

    def __init__(self, *args, hosts, image, **kwargs):
        super().__init__(*args, **kwargs)
        self.hosts = {str(h.pk): h for h in hosts}
        self.fields["host"].choices = [("", _("Automatic (the host with the most free memory)"))] + [
            (pk, f"{h.name} ({h.get_state_display()})") for pk, h in self.hosts.items()
        ]
        networks = sorted({h.network for h in hosts if h.network})
        self.fields["network"].choices = [("", _("No network"))] + [(n, n) for n in networks]
        if networks and not self.is_bound:
            self.initial.setdefault("network", networks[0])
        for field in self.fields.values():
            css = "form-select" if isinstance(field, forms.ChoiceField) else "form-control"
            field.widget.attrs.setdefault("class", css)
        if image is not None and (image.encrypted or not image.cloud_init):
            self.fields["admin_password"].disabled = True
            self.fields["admin_password"].help_text = (
                _("The image is encrypted: its key cannot be changed, so no password can be set.")
                if image.encrypted
                else _("The image does not declare cloud-init, so a password set here could not be applied.")
            )

    def chosen_host(self) -> ComputeHost | None:
        return self.hosts.get(self.cleaned_data.get("host") or "")


class VMCaptureForm(forms.Form):
    name = forms.CharField(label=_("Image name"), max_length=128, widget=forms.TextInput(attrs={"class": "form-control"}))
    description = forms.CharField(
        label=_("Remarks"), max_length=1024, required=False, widget=forms.TextInput(attrs={"class": "form-control"})
    )
