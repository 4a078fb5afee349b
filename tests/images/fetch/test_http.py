import io
import os
import threading
import time

import pytest

from images.fetch import FetchCancelled, FetchError, TooLarge, fetch, split_secret
from storage.backends import lanes

from .conftest import FileRoute, MemorySink, Redirect, RequireBasicAuth, sha256

pytestmark = pytest.mark.usefixtures("fetch_settings")


def test_http_fetch_streams_the_file_and_sends_the_host_name(http_server, payload):
    server = http_server()
    server.routes["/images/disk.qcow2"] = FileRoute(payload)
    sink = MemorySink()

    result = fetch(server.url("/images/disk.qcow2"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.size == result.announced_size == len(payload)
    assert result.resumed == 0 and not result.restarted
    assert server.requests[0]["headers"]["Host"] == f"127.0.0.1:{server.server_address[1]}"


def test_dropped_connection_resumes_with_range_and_the_sha256_matches(http_server, payload):
    server = http_server()
    half = len(payload) // 2
    server.routes["/disk.raw"] = FileRoute(payload, drop_at=half)
    sink = MemorySink()

    result = fetch(server.url("/disk.raw"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.resumed == 1 and not result.restarted and sink.resets == 0
    assert [r["headers"].get("Range") for r in server.requests] == [None, f"bytes={half}-"]
    assert server.requests[1]["headers"]["If-Range"] == '"v1"'


def test_server_that_ignores_range_restarts_from_zero_once(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, ranges=False, drop_at=len(payload) // 3)
    sink = MemorySink()

    result = fetch(server.url("/disk.raw"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.restarted and sink.resets == 1
    assert len(server.requests) == 2


def test_server_that_ignores_range_and_drops_twice_fails_after_one_restart(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, ranges=False, drop_at=len(payload) // 3, drops=2)

    with pytest.raises(FetchError, match="already started again from the beginning once"):
        fetch(server.url("/disk.raw"), sink=MemorySink())
    # first try, the restart from zero, then a resume the server answers with the whole file again
    assert len(server.requests) == 3


def test_seekable_file_is_a_resettable_sink(http_server, payload, tmp_path):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, ranges=False, drop_at=len(payload) // 2)

    with open(tmp_path / "out", "w+b") as out:
        fetch(server.url("/disk.raw"), sink=out)
    assert sha256((tmp_path / "out").read_bytes()) == sha256(payload)


def test_a_sink_that_cannot_reset_fails_instead_of_restarting(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, ranges=False, drop_at=len(payload) // 2)
    received = bytearray()

    with pytest.raises(FetchError, match="cannot resume"):
        fetch(server.url("/disk.raw"), sink=received.extend)


def test_retries_are_limited(http_server, payload, settings):
    settings.IMPORT_FETCH_RETRIES = 2
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, drop_after=100_000, drops=10)

    with pytest.raises(FetchError, match="failed after 3 attempts"):
        fetch(server.url("/disk.raw"), sink=MemorySink())
    assert len(server.requests) == 3


def test_redirects_are_followed_and_the_final_url_reported(http_server, payload):
    server = http_server()
    server.routes["/latest"] = Redirect("/v2/disk.qcow2")
    server.routes["/v2/disk.qcow2"] = FileRoute(payload)
    sink = MemorySink()

    result = fetch(server.url("/latest"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.url == server.url("/v2/disk.qcow2")


def test_resume_after_a_redirect_goes_to_the_redirect_target(http_server, payload):
    server = http_server()
    server.routes["/latest"] = Redirect("/v2/disk.qcow2")
    server.routes["/v2/disk.qcow2"] = FileRoute(payload, drop_at=len(payload) // 2)
    sink = MemorySink()

    fetch(server.url("/latest"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert [r["path"] for r in server.requests] == ["/latest", "/v2/disk.qcow2", "/v2/disk.qcow2"]


def test_more_than_five_redirects_are_refused(http_server):
    server = http_server()
    for hop in range(7):
        server.routes[f"/hop{hop}"] = Redirect(f"/hop{hop + 1}")

    with pytest.raises(FetchError) as refused:
        fetch(server.url("/hop0"), sink=MemorySink())
    assert refused.value.rule == "redirects"
    assert len(server.requests) == 6


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "gopher://127.0.0.1:70/x", "ftp://127.0.0.1/x.img"]
)
def test_redirect_to_another_scheme_is_refused(http_server, location):
    server = http_server()
    server.routes["/x"] = Redirect(location)

    with pytest.raises(FetchError) as refused:
        fetch(server.url("/x"), sink=MemorySink())
    assert refused.value.rule in ("redirects", "scheme")


def test_stalled_transfer_times_out_and_resumes(http_server, payload, settings):
    settings.IMPORT_STALL_TIMEOUT = 1
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, stall_at=len(payload) // 2)
    sink = MemorySink()
    reports = []

    result = fetch(server.url("/disk.raw"), sink=sink, progress=reports.append)

    assert sha256(sink.buffer) == sha256(payload)
    assert result.resumed == 1
    assert reports and all(r.bytes_total == len(payload) for r in reports)
    assert [r.bytes_done for r in reports] == sorted(r.bytes_done for r in reports)


def test_stalled_transfer_fails_with_a_message_when_out_of_tries(http_server, payload, settings):
    settings.IMPORT_STALL_TIMEOUT = 1
    settings.IMPORT_FETCH_RETRIES = 0
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, stall_at=1000)

    with pytest.raises(FetchError, match="no data arrived for 1 seconds"):
        fetch(server.url("/disk.raw"), sink=MemorySink())


def test_cancel_stops_a_stalled_transfer(http_server, payload, settings):
    # Without a cancel that unblocks the read, the server resumes after its stall and the fetch succeeds.
    settings.IMPORT_STALL_TIMEOUT = 60
    server = http_server()
    route = server.routes["/disk.raw"] = FileRoute(payload, stall_at=len(payload) // 2)
    sink = MemorySink()

    with pytest.raises(FetchCancelled):
        fetch(server.url("/disk.raw"), sink=sink, should_cancel=lambda: len(sink.buffer) > 0)
    assert 0 < len(sink.buffer) <= len(payload) // 2
    route.release.set()


def test_announced_length_is_checked_before_any_byte_is_stored(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload)
    sink = MemorySink()
    seen = []

    class OverQuota(Exception):
        pass

    def check_length(length):
        seen.append(length)
        raise OverQuota("quota")

    with pytest.raises(OverQuota):
        fetch(server.url("/disk.raw"), sink=sink, check_length=check_length)
    assert seen == [len(payload)]
    assert sink.buffer == b""


def test_announced_length_over_the_limit_is_refused_before_the_body(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload)
    sink = MemorySink()

    with pytest.raises(TooLarge):
        fetch(server.url("/disk.raw"), sink=sink, max_bytes=len(payload) - 1)
    assert sink.buffer == b""


def test_unannounced_body_is_cut_off_at_the_limit(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, length=False)
    sink = MemorySink()

    with pytest.raises(TooLarge):
        fetch(server.url("/disk.raw"), sink=sink, max_bytes=1024 * 1024)
    assert len(sink.buffer) <= 1024 * 1024


def test_unannounced_body_within_the_limit_is_fetched(http_server, payload):
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, length=False)
    sink = io.BytesIO()

    result = fetch(server.url("/disk.raw"), sink=sink, max_bytes=len(payload))
    assert result.announced_size is None
    assert sha256(sink.getvalue()) == sha256(payload)


def test_missing_file_says_so(http_server):
    server = http_server()

    with pytest.raises(FetchError, match="404"):
        fetch(server.url("/nothing.qcow2"), sink=MemorySink())


def test_https_connects_to_the_checked_address_with_the_host_name_for_sni(
    tls_server, tls_files, payload, settings
):
    cert_path, _key = tls_files
    settings.IMPORT_CA_BUNDLE = str(cert_path)
    tls_server.routes["/disk.qcow2"] = FileRoute(payload)
    sink = MemorySink()

    fetch(tls_server.url("/disk.qcow2", host="localhost"), sink=sink)

    assert sha256(sink.buffer) == sha256(payload)
    assert tls_server.server_names == ["localhost"]
    assert tls_server.requests[0]["headers"]["Host"] == f"localhost:{tls_server.server_address[1]}"


def test_https_with_an_untrusted_certificate_is_refused(tls_server, payload):
    tls_server.routes["/disk.qcow2"] = FileRoute(payload)

    with pytest.raises(FetchError, match="could not be verified"):
        fetch(tls_server.url("/disk.qcow2", host="localhost"), sink=MemorySink())
    assert tls_server.requests == []


def test_http_user_and_password_go_only_to_the_same_origin(http_server, payload, settings):
    settings.IMPORT_ALLOWED_NETWORKS = ["127.0.0.1/32", "127.0.0.2/32"]
    other = http_server("127.0.0.2")
    other.routes["/disk.raw"] = FileRoute(payload)
    server = http_server()
    server.routes["/disk.raw"] = RequireBasicAuth(payload)
    server.routes["/moved"] = Redirect(other.url("/disk.raw"))
    redacted, secret = split_secret(server.url("/disk.raw").replace("http://", "http://carol:s3cr%3Aet@"))
    sink = MemorySink()

    result = fetch(redacted, secret=secret, sink=sink)
    assert sha256(sink.buffer) == sha256(payload)
    assert result.url == redacted and ":***@" in result.url

    fetch(server.url("/moved").replace("http://", "http://carol:s3cr%3Aet@"), sink=MemorySink())
    assert "Authorization" in server.requests[-1]["headers"]
    assert "Authorization" not in other.requests[-1]["headers"]


class ChunkStoreSink:
    """A storage writer as an import's sink is (images.services.receiving.ImportSink): it takes whole
    buffers of its chunk size from the fetch and stores them without a copy."""

    def __init__(self, writer):
        from storage.backends.standalone import HandedBuffer

        self.writer = writer
        self.handed_block_size = writer.handed_block_size
        self.handed = 0
        self._kind = HandedBuffer

    def write(self, data):
        if isinstance(data, memoryview) and isinstance(data.obj, self._kind):
            self.handed += 1
        self.writer.write(data)


@pytest.mark.django_db
def test_blocks_handed_to_a_chunk_store_arrive_whole_on_its_boundaries(http_server, standalone):
    """The fetch reads the body into buffers the storage writer keeps; after a drop in the middle of a
    chunk it resumes on the chunk boundaries again, and a slow server's bytes go on before a buffer is
    full. The stored replica is the file, byte for byte."""
    import hashlib
    import os

    from storage.backends import get_backend

    payload = os.urandom(5 * 4 * 1024 * 1024 + 777)
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload, drop_at=9 * 1024 * 1024 + 5)
    backend = get_backend(standalone)
    sink = ChunkStoreSink(backend.open_writer("fetched", expected_size=len(payload)))

    result = fetch(server.url("/disk.raw"), sink=sink)
    stored = sink.writer.commit()

    assert result.resumed == 1
    assert stored.md5 == hashlib.md5(payload).hexdigest()
    assert b"".join(backend.read_range("fetched")) == payload
    assert sink.handed >= 3  # whole chunks before the drop and after the resume

    slow = http_server()
    slow.routes["/slow.raw"] = FileRoute(payload[: 1024 * 1024], pace=(128 * 1024, 0.1))
    pieces = CountingSink()
    fetch(slow.url("/slow.raw"), sink=pieces)
    assert bytes(pieces.buffer) == payload[: 1024 * 1024]
    assert pieces.writes >= 2  # as they came, not all at the end


def test_a_slow_servers_bytes_go_on_as_they_come_not_when_a_read_is_full(http_server):
    """A server that trickles 40 KiB every 0.2 s: its bytes reach the sink (and the import's progress)
    within about the flush interval (0.25 s) of their coming, a few times a second. The fetch reads
    what the socket holds, one read at a time, into the sink's buffers; a read that waited for a
    quarter MiB held them for 1.2 s."""
    payload = os.urandom(400 * 1024)
    server = http_server()
    server.routes["/slow.raw"] = FileRoute(payload, pace=(40 * 1024, 0.2))
    arrivals = []

    class Sink(CountingSink):
        def write(self, data):
            arrivals.append(round(time.monotonic() - start, 2))
            super().write(data)

    sink = Sink()
    start = time.monotonic()
    fetch(server.url("/slow.raw"), sink=sink)

    assert bytes(sink.buffer) == payload
    assert arrivals[0] < 1.0, arrivals  # (a quarter MiB: seven pieces, the last sent at 1.2 s)
    assert len(arrivals) >= 3, arrivals  # (a quarter MiB at a time: two)


class CountingSink(MemorySink):
    handed_block_size = 4 * 1024 * 1024

    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, data):
        self.writes += 1
        super().write(data)


def test_the_reading_thread_gives_way_to_the_hashing_that_sets_the_pace(http_server):
    """The thread that reads the socket runs ahead of the MD5 thread into a queue: it is niced
    (storage.backends.lanes.HELPER_NICE) so that on a busy machine the MD5 thread gets the CPU first."""
    payload = os.urandom(16 * 1024 * 1024)  # more blocks than the queue holds: the reader waits, alive
    server = http_server()
    server.routes["/disk.raw"] = FileRoute(payload)
    seen = []

    class Sink(MemorySink):
        def write(self, data):
            if not seen:
                (reader,) = (thread for thread in threading.enumerate() if thread.name == "image-fetch")
                seen.append(os.getpriority(os.PRIO_PROCESS, reader.native_id))
            super().write(data)

    sink = Sink()
    fetch(server.url("/disk.raw"), sink=sink)

    assert sink.buffer == payload
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert seen == [min(base + lanes.HELPER_NICE, 19)]
