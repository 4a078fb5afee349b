"""Every state change of an image. Views, admin, the API, jobs and commands call these; nothing else
writes `Image.status`.

- transitions.py: `image_transition`, the one function that changes a status.
- lifecycle.py: edit name/remarks/labels, enable/disable, sharing, delete and batch delete (batch delete
  moves many rows with conditional bulk UPDATEs that follow the same transitions table).
"""

from .lifecycle import (  # noqa: F401
    BatchDeleteResult,
    ImageInUse,
    image_batch_delete,
    image_delete,
    image_set_enabled,
    image_set_sharing,
    image_update,
    validate_image_name,
    vms_using_images,
)
from .transitions import TransitionNotAllowed, image_transition  # noqa: F401
