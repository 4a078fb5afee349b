"""http and https with urllib3, connecting to the address the guard checked.

The connection pool is made for the checked IP while the Host header, the TLS server name (SNI) and the
certificate check keep the URL's host name. Redirects are followed by hand (at most
`policy.max_redirects`), each target checked like the first URL. A dropped connection resumes with a
Range request guarded by If-Range; a server that answers 200 instead of 206 cannot resume.
"""

from __future__ import annotations

import base64
import http.client
import re
import time
from urllib.parse import urljoin

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)

from imageconsole.core.words import gettext as _
from storage.backends.standalone import HandedBuffer, give_back_buffers, take_buffer

from . import guard, urls
from .engine import BLOCK_SIZE, Transfer
from .errors import FetchError, URLRefused
from .errors import Transient as _Transient
from .policy import FetchPolicy

USER_AGENT = "imageconsole-import/1"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_REDIRECTS = {301, 302, 303, 307, 308}
_RETRY_STATUSES = {408, 429, 500, 502, 503, 504}
HANDED_FLUSH_SECONDS = 0.25
HANDED_READ = 256 * 1024  # (over TLS, or a chunked or until-close body: see _readinto_some)


def transient_reason(error: BaseException | None, *, stall_timeout: float) -> str:
    causes = []
    while error is not None and len(causes) < 5:
        causes.append(error)
        error = error.__cause__ or error.__context__
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return _("the connection was refused")
    if causes and isinstance(causes[0], ReadTimeoutError | TimeoutError):
        if not isinstance(causes[0], ConnectTimeoutError):
            return _("no data arrived for %(seconds)d seconds") % {"seconds": stall_timeout}
        if not isinstance(causes[0], NewConnectionError):
            return _("the connection timed out")
    return _("the connection dropped")


class HttpDriver:
    def __init__(self, url: urls.ImportURL, *, password: callable, policy: FetchPolicy):
        self.origin = url
        self.current = url
        self.policy = policy
        self._password = password
        self._validator = ""
        self._addresses: dict[tuple[str, int], list] = {}

    @property
    def current_url(self) -> str:
        return self.current.redacted

    def _resolve(self, url: urls.ImportURL):
        key = (url.host, url.port)
        if key not in self._addresses:
            self._addresses[key] = guard.resolve(url, self.policy)
        return self._addresses[key]

    def _headers(self, url: urls.ImportURL, offset: int) -> dict[str, str]:
        headers = {"Host": url.host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self._validator:
                headers["If-Range"] = self._validator
        same_origin = (url.scheme, url.host, url.port) == (
            self.origin.scheme,
            self.origin.host,
            self.origin.port,
        )
        if self.origin.username and same_origin:
            token = f"{self.origin.username}:{self._password()}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        return headers

    def _pool(self, url: urls.ImportURL, ip):
        timeout = urllib3.Timeout(connect=self.policy.connect_timeout, read=self.policy.stall_timeout)
        common = {"host": str(ip), "port": url.port, "timeout": timeout, "retries": False, "maxsize": 1}
        if url.scheme == "http":
            return urllib3.HTTPConnectionPool(**common)
        tls = {"cert_reqs": "CERT_REQUIRED"}
        if self.policy.ca_bundle:
            tls["ca_certs"] = self.policy.ca_bundle
        if guard.literal_address(url.host) is None:
            tls["server_hostname"] = url.host
            tls["assert_hostname"] = url.host
        return urllib3.HTTPSConnectionPool(**common, **tls)

    def _open(self, url: urls.ImportURL, offset: int):
        last_error = None
        for ip in self._resolve(url):
            pool = self._pool(url, ip)
            try:
                response = pool.urlopen(
                    "GET",
                    url.request_target,
                    headers=self._headers(url, offset),
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    assert_same_host=False,
                )
                return pool, response
            except SSLError as error:
                pool.close()
                raise FetchError(
                    _(
                        "The TLS certificate of %(host)s could not be verified (%(reason)s). An administrator can add "
                        "the certificate of a private authority with IMPORT_CA_BUNDLE."
                    )
                    % {"host": url.host, "reason": _tls_reason(error)}
                ) from error
            except (ConnectTimeoutError, OSError) as error:
                pool.close()
                last_error = error
        raise _Transient(
            _("could not connect to %(host)s: %(reason)s")
            % {
                "host": url.host,
                "reason": transient_reason(last_error, stall_timeout=self.policy.stall_timeout),
            }
        )

    def attempt(self, transfer: Transfer) -> None:
        redirects = 0
        while True:
            transfer.check_stop()
            url = self.current
            pool = response = None
            try:
                try:
                    pool, response = self._open(url, transfer.offset)
                except URLRefused as refused:
                    if url != self.origin:
                        raise _redirect_refused(url, refused) from None
                    raise
                transfer.set_abort(response.shutdown)
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location", "")
                    redirects += 1
                    if redirects > self.policy.max_redirects:
                        raise URLRefused(
                            _("The server redirected more than %(max)d times (rule: redirects).")
                            % {"max": self.policy.max_redirects},
                            rule="redirects",
                        )
                    self.current = self._redirect_target(url, location)
                    continue
                self._read(transfer, url, response)
                return
            except (HTTPError, OSError) as error:
                raise _Transient(transient_reason(error, stall_timeout=self.policy.stall_timeout)) from error
            finally:
                transfer.set_abort(None)
                if response is not None:
                    response.close()
                if pool is not None:
                    pool.close()

    def _redirect_target(self, url: urls.ImportURL, location: str) -> urls.ImportURL:
        if not location:
            raise FetchError(_("The server answered with a redirect but no Location."))
        base = f"{url.scheme}://{url.host_header}{url.request_target}"
        target, _password = urls.parse(urljoin(base, location))
        if target.scheme not in ("http", "https"):
            raise URLRefused(
                _(
                    "The server redirected to a %(scheme)s URL; redirects may only lead to http or https (rule: redirects)."
                )
                % {"scheme": target.scheme},
                rule="redirects",
            )
        try:
            guard.check_url(target, self.policy)
        except URLRefused as refused:
            raise _redirect_refused(target, refused) from None
        return target

    def _read(self, transfer: Transfer, url: urls.ImportURL, response) -> None:
        status = response.status
        offset = transfer.offset
        if status in _RETRY_STATUSES:
            raise _Transient(_("the server answered %(status)d, try again later") % {"status": status})
        if status == 416 and offset:
            transfer.restart()
            raise _Transient(_("the server could not continue from where the transfer stopped"))
        if status >= 400 or status not in (200, 206):
            raise FetchError(_http_error(url, status, response.reason))
        length = response.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None

        if status == 206:
            match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not offset or not match or int(match.group(1)) != offset:
                raise FetchError(_("The server answered a range request with the wrong part of the file."))
            total = None if match.group(3) == "*" else int(match.group(3))
        else:
            if offset:
                # Range ignored, or If-Range found the file changed: only a fresh start can continue.
                transfer.restart()
            total = length
            self._validator = _validator(response.headers)
        transfer.announce(total)

        fp = getattr(response, "_fp", None)  # urllib3's http.client response (its readinto: no copy)
        if transfer.handed_block and isinstance(fp, http.client.HTTPResponse):
            self._read_handed(transfer, fp, one_read=url.scheme == "http")
            return
        while True:
            # Up to a block from one read of the socket: read() assembles each block in a buffer of
            # http.client's and copies it out again, two copies of every byte where one does.
            data = response.read1(BLOCK_SIZE)
            if not data:
                break
            transfer.deliver(data)

    @staticmethod
    def _read_handed(transfer: Transfer, fp: http.client.HTTPResponse, *, one_read: bool) -> None:
        """The body straight from the socket into buffers the sink keeps (HandedBuffer): whole ones, on
        the sink's chunk boundaries, are stored as chunks without a copy. A slow server's bytes go on
        as copies every HANDED_FLUSH_SECONDS, so that progress shows them (and the blocks after them
        keep to the boundaries). (Created with decode_content=False, the bytes are the body's as sent.)"""
        size = transfer.handed_block
        buffer = None
        while True:
            if buffer is None:
                buffer = take_buffer(size, HandedBuffer)
            want = size - transfer.offset % size  # to the next chunk boundary
            view = memoryview(buffer)[:want]
            filled, started = 0, time.monotonic()
            while filled < want:
                transfer.check_stop()
                received = _readinto_some(fp, view[filled:], one_read=one_read)
                if not received:
                    break
                filled += received
                if filled < want and time.monotonic() - started >= HANDED_FLUSH_SECONDS:
                    break
            if filled == size:
                transfer.deliver(view)  # the sink's now
                buffer = None
            elif filled:
                transfer.deliver(bytes(view[:filled]))
            if not received:  # the end of the body
                give_back_buffers([buffer])  # (None when the last one went to the sink)
                return


def _readinto_some(fp: http.client.HTTPResponse, view: memoryview, *, one_read: bool) -> int:
    """Bytes of the body into `view` as they come. Over plain HTTP (`one_read`): what is buffered, else
    one read of the socket, as many bytes as it holds up to the view. http.client's readinto waits
    until its view is full: reading a quarter MiB at a time that way cost the receiving thread twice
    the CPU of an upload's (0.33 s against 0.15 s per GiB here: a wake-up for every small read), and a
    trickling server's bytes went on only when a quarter MiB had come. Over TLS one read is one record
    (16 KiB), so there http.client gathers a quarter MiB in C, as it does for a chunked body or one that
    ends with the connection."""
    buffered = getattr(fp, "fp", None)
    if not one_read or fp.chunked or fp.length is None or not hasattr(buffered, "readinto1"):
        return fp.readinto(view[:HANDED_READ])
    view = view[: fp.length]
    received = buffered.readinto1(view)
    if not received and len(view):
        fp._close_conn()  # (as http.client's readinto does: the connection ended before the length)
    else:
        fp.length -= received
        if not fp.length:
            fp._close_conn()
    return received


def _validator(headers) -> str:
    etag = headers.get("ETag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified", "")


def _tls_reason(error: BaseException) -> str:
    text = str(error)
    return text.rsplit(":", 1)[-1].strip(" )'\"") if "certificate" in text.lower() else text[:200]


def _http_error(url: urls.ImportURL, status: int, reason: str) -> str:
    if status in (401, 403):
        return _("The server refused access to %(url)s (%(status)d %(reason)s).") % {
            "url": url.redacted,
            "status": status,
            "reason": reason,
        }
    if status == 404:
        return _("There is no file at %(url)s (404 Not Found).") % {"url": url.redacted}
    return _("The server answered %(status)d %(reason)s for %(url)s.") % {
        "url": url.redacted,
        "status": status,
        "reason": reason,
    }


def _redirect_refused(target: urls.ImportURL, refused: URLRefused) -> URLRefused:
    """A refusal of where the server sent us says it was a redirect: the URL the user gave was fine."""
    return URLRefused(
        _("The server redirected the download to %(url)s, which is refused: %(reason)s")
        % {"url": target.redacted, "reason": refused},
        rule=refused.rule,
        category=refused.category,
    )
