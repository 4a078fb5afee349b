from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RecyclebinConfig(AppConfig):
    name = "recyclebin"
    verbose_name = _("Recycle bin")

    def ready(self):
        # images sits below this app: it asks the deletion policy, and its reconciler resumes lost
        # expunges, through hooks registered here.
        from images import hooks

        from .services import bin, policy

        hooks.register_deletion_plan(policy.deletion_plan)
        hooks.register_after_delete(policy.after_delete)
        hooks.register_reconciler(bin.reconcile_hook)
