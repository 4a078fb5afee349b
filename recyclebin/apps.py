from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class RecyclebinConfig(AppConfig):
    name = "recyclebin"
    verbose_name = _("Recycle bin")

    def ready(self):
        from tenants.oplog import register_actions

        # The operation log's words for this app's own action codes (restore and expunge are images').
        register_actions(
            {
                "image.expire": pgettext_lazy("Operation", "Retention period ended"),
                "recyclebin.policy": pgettext_lazy("Operation", "Change deletion policy"),
            }
        )
        # images sits below this app: it asks the deletion policy, and its reconciler resumes lost
        # expunges, through hooks registered here.
        from images import hooks

        from .services import bin, policy

        hooks.register_deletion_plan(policy.deletion_plan)
        hooks.register_after_delete(policy.after_delete)
        hooks.register_reconciler(bin.reconcile_hook)
