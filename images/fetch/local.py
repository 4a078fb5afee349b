"""file:///path/file: administrators only, and only under the configured roots (IMPORT_FILE_ROOTS).

The path is resolved (symbolic links followed) before it is compared with the roots, so a link cannot
lead out of them, and the file is opened without following a final link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from imageconsole.core.words import gettext as _
from imageconsole.core.words import os_reason

from . import urls
from .engine import BLOCK_SIZE, Transfer
from .errors import FetchError, URLRefused


def check_file_url(url: urls.ImportURL, *, allow_file: bool, roots) -> Path:
    """The real path the file URL names, or URLRefused naming the rule."""
    if not allow_file:
        raise URLRefused(
            _(
                "Only platform administrators can import from file:// URLs (rule: file URLs for administrators)."
            ),
            rule="file-admin",
        )
    if not roots:
        raise URLRefused(
            _(
                "file:// imports are turned off: no directory is configured in IMPORT_FILE_ROOTS (rule: file roots)."
            ),
            rule="file-roots",
        )
    resolved = Path(os.path.realpath(url.path))
    for root in roots:
        root = Path(os.path.realpath(root))
        if resolved != root and resolved.is_relative_to(root):
            return resolved
    raise URLRefused(
        _(
            "%(path)s is not under a directory allowed for file:// imports (rule: file roots, IMPORT_FILE_ROOTS = "
            "%(roots)s)."
        )
        % {"path": url.path, "roots": ", ".join(str(r) for r in roots)},
        rule="file-roots",
    )


class LocalDriver:
    def __init__(self, url: urls.ImportURL, *, path: Path):
        self.url = url
        self.path = path

    @property
    def current_url(self) -> str:
        return self.url.redacted

    def attempt(self, transfer: Transfer) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise FetchError(_("There is no file at %(path)s.") % {"path": self.url.path}) from None
        except OSError as error:
            raise FetchError(
                _("%(path)s cannot be read: %(reason)s") % {"path": self.url.path, "reason": os_reason(error)}
            ) from error
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchError(_("%(path)s is not a regular file.") % {"path": self.url.path})
            transfer.announce(info.st_size)
            os.lseek(fd, transfer.offset, os.SEEK_SET)
            while transfer.offset < info.st_size:
                transfer.check_stop()
                data = os.read(fd, min(BLOCK_SIZE, info.st_size - transfer.offset))
                if not data:
                    raise FetchError(
                        _("%(path)s became shorter while it was read.") % {"path": self.url.path}
                    )
                transfer.deliver(data)
        finally:
            os.close(fd)
