"""Forms of the list's row actions and batch delete. They validate input; the services make the changes."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from tenants.models import Tenant

from .catalog import NAME_MAX_LENGTH, validate_image_name
from .models import Image
from .services.lifecycle import DESCRIPTION_MAX_LENGTH, LABEL_MAX_LENGTH, LABELS_MAX, clean_labels


class ImageEditForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=NAME_MAX_LENGTH,
        strip=False,
        help_text=_(
            "1 to 128 letters, digits, spaces and - _ . ( ) : +, not starting or ending with a space."
        ),
        error_messages={"required": _("Enter a name.")},
    )
    description = forms.CharField(
        label=_("Remarks"),
        required=False,
        max_length=DESCRIPTION_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
    )

    def clean_name(self):
        name = self.cleaned_data["name"]
        validate_image_name(name)
        return name


class ImageLabelsForm(forms.Form):
    labels = forms.CharField(
        label=_("Labels"),
        required=False,
        # Lazy with its values: formatting here, at import, would fix the words in the first language.
        help_text=format_lazy(
            "{}",
            lazy(
                lambda: (
                    _("Separate labels with commas; at most %(count)d labels of up to %(length)d characters.")
                    % {"count": LABELS_MAX, "length": LABEL_MAX_LENGTH}
                ),
                str,
            )(),
        ),
    )

    def clean_labels(self):
        return clean_labels(self.cleaned_data["labels"].split(","))


class ImageSharingForm(forms.Form):
    sharing = forms.ChoiceField(
        label=_("Sharing mode"), choices=Image.Sharing.choices, widget=forms.RadioSelect
    )
    shared_with = forms.ModelMultipleChoiceField(
        label=_("Share with these tenants"),
        queryset=Tenant.objects.none(),
        required=False,
        help_text=_("Only for “Shared with chosen tenants”. Hold Ctrl (⌘ on a Mac) to choose several."),
    )

    def __init__(self, *args, image: Image, allow_global: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["shared_with"].queryset = Tenant.objects.filter(is_active=True).exclude(
            pk=image.tenant_id
        )
        if not allow_global:
            self.fields["sharing"].choices = [
                c for c in Image.Sharing.choices if c[0] != Image.Sharing.GLOBAL
            ]
        # With no other tenant in the system there is nobody to choose: the page says so instead of
        # showing an empty picker, and the mode cannot be chosen.
        self.no_other_tenants = not self.fields["shared_with"].queryset.exists()

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("sharing") == Image.Sharing.TENANTS and not cleaned.get("shared_with"):
            self.add_error("shared_with", _("Choose at least one other tenant to share the image with."))
        return cleaned


class BatchSelectionForm(forms.Form):
    """The rows picked in the list: their ids, or every image matching the list's current filter."""

    ids = forms.MultipleChoiceField(required=False)
    all = forms.BooleanField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any value is accepted here; ids that are not UUIDs or not visible are reported per image.
        self.fields["ids"].valid_value = lambda value: True

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("all") and not cleaned.get("ids"):
            raise ValidationError(_("Select at least one image first."), code="nothing_selected")
        return cleaned
