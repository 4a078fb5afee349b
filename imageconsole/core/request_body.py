"""A request body of known length, read without the WSGI server's buffering where that is safe.

    read = body_reader(request)
    while data := read(4 * MiB): ...
    n = read.readinto(buffer)       # or straight into a buffer of the caller's: 0 at the end

Under gunicorn (its HTTP/1 worker, a body with Content-Length) the bytes come straight from the client's
socket: gunicorn's own reader assembles every read in two BytesIO buffers, copying each byte four times
in a Python loop on the very thread that feeds an import's hashing and storing, which made that thread
the slowest part of an upload. gunicorn's count of the body's bytes still to come is kept as they are
taken, so it finds the body consumed afterwards and the connection is kept alive as usual. Anywhere else
(Django's test client, another server, a chunked body, a gunicorn whose reader is not the one this
module knows) it is the request's own stream.
"""

from __future__ import annotations

from collections.abc import Callable


def _held_by(body) -> int | None:
    """How many bytes gunicorn's Body holds already read (None: not the Body this module knows)."""
    buffered = getattr(body, "buf", None)
    if buffered is None or not callable(getattr(buffered, "getbuffer", None)):
        return None
    with buffered.getbuffer() as view:
        return view.nbytes


class BodyReader:
    """`read(n)`: at most n of the body's next bytes (fewer as they arrive), b"" at its end;
    `read.readinto(view)`: the same into `view`, returning how many (0 at the end)."""

    def __init__(self, read: Callable[[int], bytes], readinto: Callable[[memoryview], int] | None = None):
        self._read = read
        self._readinto = readinto

    def __call__(self, size: int) -> bytes:
        return self._read(size)

    def readinto(self, view: memoryview) -> int:
        if self._readinto is not None:
            return self._readinto(view)
        data = self._read(len(view))
        view[: len(data)] = data
        return len(data)


def body_reader(request) -> BodyReader:
    """The request's body as a BodyReader (see the module's docstring)."""
    request = getattr(request, "_request", request)  # a REST framework request wraps Django's
    environ = request.META
    sock = environ.get("gunicorn.socket")
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    if (
        sock is None
        or type(reader).__name__ != "LengthReader"
        or not isinstance(getattr(reader, "length", None), int)
        or not callable(getattr(unreader, "take_buffered", None))
        or not callable(getattr(unreader, "unread", None))
        or _held_by(body) != 0
        or getattr(request, "_read_started", False)
    ):
        return BodyReader(request.read)
    # What gunicorn read past the headers comes first; anything beyond this body is given back.
    held = unreader.take_buffered()
    if len(held) > reader.length:
        unreader.unread(held[reader.length :])
        held = held[: reader.length]
    reader.length -= len(held)
    request._read_started = True
    pending = [held] if held else []

    def read(size: int) -> bytes:
        if pending:
            data = pending.pop()
            if len(data) > size:
                pending.append(data[size:])
                data = data[:size]
            return data
        size = min(size, reader.length)
        if size <= 0:
            return b""
        try:
            data = sock.recv(size)
        except OSError:
            body.failed = True  # where the next request would begin is unknown: gunicorn closes
            raise
        reader.length -= len(data)
        return data

    def readinto(view: memoryview) -> int:
        if pending:
            data = read(len(view))
            view[: len(data)] = data
            return len(data)
        size = min(len(view), reader.length)
        if size <= 0:
            return 0
        try:
            received = sock.recv_into(view, size)
        except OSError:
            body.failed = True
            raise
        reader.length -= received
        return received

    return BodyReader(read, readinto)
