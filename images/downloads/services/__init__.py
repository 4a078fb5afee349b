"""Download links and exported images: every change to them, and what a link serves.

- links.py: `link_create` (a 256-bit token, only its SHA256 kept), `link_revoke`, `link_resolve` (the
  public download's lookup), `log_download`.
- exports.py: `export_create` (enqueues `export_run` on the `default` queue), `export_run`,
  `export_delete`, `exports_expire`, and `image_downloads_expunge`, registered with images.hooks so the
  recycle bin's expunge removes an image's exports and links; `made_export_*` for exports an app above
  images writes itself (compute's OVA of a VM built on the image).
"""

from .common import (  # noqa: F401
    FILE_EXTENSIONS,
    PRESIGN_MAX_SECONDS,
    DownloadRefused,
    LinkGone,
    download_settings_update,
    image_filename,
    ready_replica,
)
from .exports import (  # noqa: F401
    EXPORT_TARGETS,
    export_create,
    export_delete,
    export_run,
    exports_expire,
    image_downloads_expunge,
    made_export_failed,
    made_export_finish,
    made_export_progress,
    made_export_start,
)
from .links import (  # noqa: F401
    hash_token,
    link_create,
    link_path,
    link_resolve,
    link_revoke,
    link_seconds_left,
    log_download,
)
