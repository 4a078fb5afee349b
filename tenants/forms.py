from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ProjectGroup


class ProjectGroupForm(forms.ModelForm):
    class Meta:
        model = ProjectGroup
        fields = ["name", "description"]
        error_messages = {"name": {"required": _("Give the project group a name.")}}

    def __init__(self, *args, tenant, **kwargs):
        super().__init__(*args, **kwargs)
        self.tenant = tenant

    def clean_name(self):
        name = self.cleaned_data["name"].strip()
        clash = ProjectGroup.objects.filter(tenant=self.tenant, name=name)
        if self.instance.pk:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError(
                _("This tenant already has a project group named “%(name)s”."),
                code="duplicate",
                params={"name": name},
            )
        return name


class SwitchTenantForm(forms.Form):
    tenant = forms.IntegerField()
