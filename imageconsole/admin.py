"""Django admin's login-throttling pages (django-axes) with every column header in the console's languages:
axes names two of its columns after methods, which Django shows untranslated ("Status", "Expiration")."""

from axes.admin import AccessAttemptAdmin as AxesAccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.utils.translation import gettext_lazy as _


class AccessAttemptAdmin(AxesAccessAttemptAdmin):
    @admin.display(description=_("Status"))
    def status(self, obj):
        return super().status(obj)

    @admin.display(description=_("Expires At"))
    def expiration(self, obj):
        return super().expiration(obj)


if admin.site.is_registered(AccessAttempt):  # axes.admin is imported first: it comes first in INSTALLED_APPS
    admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AccessAttemptAdmin)
