"""Every state change of the recycle bin. Views, admin, the API, jobs and commands call these.

- policy.py: the deletion policy in force for a tenant, what a delete does under it, applying a change.
- bin.py: restore and expunge (one or many), the expunge job's work, retention expiry, sweep, reconcile.
"""

from .bin import (  # noqa: F401
    RestoreRefused,
    expunges_reconcile,
    image_expire,
    image_expunge,
    image_expunge_run,
    image_restore,
    images_batch_expunge,
    images_batch_restore,
    recyclebin_sweep,
)
from .policy import Policy, deletion_plan, platform_policy, policy_apply, policy_for  # noqa: F401
