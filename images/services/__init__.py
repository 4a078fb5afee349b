"""Every state change of an image. Views, admin, the API, jobs and commands call these; nothing else
writes `Image.status`.

- transitions.py: `image_transition` and its many-ids form `image_transition_many`, the one writer of a
  status (lock, check TRANSITIONS, update, log a row per image, follow-ups after commit);
  `images_transition_bulk` is the older bulk call, now a wrapper over the many-ids form.
- batch.py: what batch actions share (ids asked for, their rows in scope, a result per image).
- lifecycle.py: edit name/remarks/labels, enable/disable, sharing, delete and batch delete.
- imports.py: create an import, accept an upload's length (quota, space), fail, cancel, clean up.
- receiving.py: `ImportReceiver` takes the bytes (tus, PUT, a URL fetch via `ImportSink`, a command).
- pipeline.py: the jobs' work after the last byte (inspect, convert, store, available).
- reconcile.py: imports whose job is gone are resumed or failed; orphaned staging removed.
"""

from .batch import BATCH_CHUNK, BatchItem, BatchResult, batch_rows, is_uuid, wanted_ids  # noqa: F401
from .imports import (  # noqa: F401
    ImportNotAccepted,
    image_import_create,
    import_cancel,
    import_cleanup,
    import_fail,
    import_storage_set,
    needs_conversion,
    upload_begin,
)
from .lifecycle import (  # noqa: F401
    ImageInUse,
    ImageProtected,
    image_batch_delete,
    image_delete,
    image_set_enabled,
    image_set_sharing,
    image_update,
    validate_image_name,
    vms_using_images,
)
from .metadata import image_set_metadata  # noqa: F401
from .receiving import ImportCancelled, ImportReceiver, ImportSink, OffsetMismatch, UploadBusy  # noqa: F401
from .sharing import ShareExists, image_share_add, image_share_answer, image_share_remove  # noqa: F401
from .transitions import (  # noqa: F401
    TransitionNotAllowed,
    image_transition,
    image_transition_many,
    images_transition_bulk,
)
