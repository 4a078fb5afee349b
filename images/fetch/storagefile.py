"""The bytes of a file on a storage server, read over the storage's own SSH connection and key.

Only "retrieve existing images" of a standalone (server) storage uses it: the path is one found under the
storage's mount path, and the storage backend refuses anything else (symlinks, files outside the mount
path). No URL a user types reaches this driver. A dropped connection resumes from the offset reached.
"""

from __future__ import annotations

from imageconsole.core.words import gettext as _
from imageconsole.core.words import os_reason

from .engine import BLOCK_SIZE, Transfer
from .errors import FetchError
from .errors import Transient as _Transient

# Pipelined reads of this much at a time: constant memory, few round trips.
WINDOW = 8 * BLOCK_SIZE


class StorageFileDriver:
    def __init__(self, backend, path: str, *, label: str):
        self.backend = backend
        self.path = path
        self.label = label

    @property
    def current_url(self) -> str:
        return self.label

    def attempt(self, transfer: Transfer) -> None:
        from storage.backends.base import StorageError
        from storage.backends.server import Unreachable

        try:
            with self.backend.open_mount_file(self.path) as (remote, size):
                transfer.announce(size)
                offset = transfer.offset
                while offset < size:
                    transfer.check_stop()
                    end = min(size, offset + WINDOW)
                    blocks = [
                        (start, min(BLOCK_SIZE, end - start)) for start in range(offset, end, BLOCK_SIZE)
                    ]
                    for data in remote.readv(blocks):
                        if not data:
                            raise FetchError(
                                _("%(path)s became shorter while it was read.") % {"path": self.path}
                            )
                        transfer.deliver(data)
                        offset += len(data)
        except Unreachable as error:
            raise _Transient(str(error)) from error
        except StorageError as error:
            raise FetchError(str(error)) from error
        except OSError as error:
            raise FetchError(
                _("%(path)s cannot be read: %(reason)s") % {"path": self.path, "reason": os_reason(error)}
            ) from error
