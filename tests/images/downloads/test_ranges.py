"""images.downloads.ranges: Range, If-Range and conditional requests answered as RFC 9110 says."""

import email
import hashlib
from datetime import UTC, datetime

import pytest
from django.test import RequestFactory
from django.utils.http import http_date

from images.downloads.ranges import ByteRange, RangeNotSatisfiable, parse_range, ranged_response

DATA = bytes(range(256)) * 40  # 10,240 bytes
ETAG = '"' + hashlib.sha256(DATA).hexdigest() + '"'
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def answer(method="get", path=None, **headers):
    request = getattr(RequestFactory(), method)(
        "/d/x/file.raw", **{f"HTTP_{k}": v for k, v in headers.items()}
    )
    kwargs = (
        {"path": path}
        if path
        else {
            "read": lambda start, stop: [DATA[start:stop][i : i + 1000] for i in range(0, stop - start, 1000)]
        }
    )
    response = ranged_response(
        request, size=len(DATA), etag=ETAG, last_modified=WHEN, filename="ünïcode disk.raw", **kwargs
    )
    body = (
        b""
        if method == "head"
        else b"".join(response.streaming_content)
        if response.streaming
        else response.content
    )
    return response, body


def test_parse_range_forms():
    assert parse_range("bytes=0-99", 1000) == [ByteRange(0, 100)]
    assert parse_range("bytes=900-", 1000) == [ByteRange(900, 1000)]
    assert parse_range("bytes=-100", 1000) == [ByteRange(900, 1000)]
    assert parse_range("bytes=990-2000", 1000) == [ByteRange(990, 1000)]
    assert parse_range("bytes=500-599,0-9", 1000) == [ByteRange(500, 600), ByteRange(0, 10)]
    # Overlapping ranges are merged (RFC 9110 allows coalescing).
    assert parse_range("bytes=0-50,40-99", 1000) == [ByteRange(0, 100)]
    # Other units and bad syntax: the Range is ignored, the whole file is sent.
    for ignored in ("items=0-1", "bytes=abc", "bytes=5-1", "bytes=1-2-3", ""):
        assert parse_range(ignored, 1000) is None
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=1000-", 1000)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-0", 1000)


@pytest.mark.parametrize("use_path", [False, True])
def test_whole_single_and_suffix_ranges(tmp_path, use_path):
    path = None
    if use_path:
        path = tmp_path / "file"
        path.write_bytes(DATA)
    response, body = answer(path=path)
    assert response.status_code == 200 and body == DATA
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(len(DATA))
    assert response["ETag"] == ETAG and response["Last-Modified"] == http_date(WHEN.timestamp())
    assert response["Content-Disposition"] == "attachment; filename*=utf-8''%C3%BCn%C3%AFcode%20disk.raw"

    response, body = answer(path=path, RANGE="bytes=100-1099")
    assert response.status_code == 206 and body == DATA[100:1100]
    assert response["Content-Range"] == f"bytes 100-1099/{len(DATA)}" and response["Content-Length"] == "1000"

    response, body = answer(path=path, RANGE="bytes=-10")
    assert response.status_code == 206 and body == DATA[-10:]


@pytest.mark.parametrize("use_path", [False, True])
def test_several_ranges_are_multipart_byteranges(tmp_path, use_path):
    path = None
    if use_path:
        path = tmp_path / "file"
        path.write_bytes(DATA)
    response, body = answer(path=path, RANGE="bytes=0-9,5000-5099,-5")
    assert response.status_code == 206
    assert response["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert response["Content-Length"] == str(len(body))
    message = email.message_from_bytes(
        b"Content-Type: " + response["Content-Type"].encode() + b"\r\n\r\n" + body
    )
    parts = message.get_payload()
    assert [p["Content-Range"] for p in parts] == [
        f"bytes 0-9/{len(DATA)}",
        f"bytes 5000-5099/{len(DATA)}",
        f"bytes {len(DATA) - 5}-{len(DATA) - 1}/{len(DATA)}",
    ]
    assert [p.get_payload(decode=True) for p in parts] == [DATA[0:10], DATA[5000:5100], DATA[-5:]]


def test_unsatisfiable_range_is_416_with_the_size():
    response, _body = answer(RANGE="bytes=20000-30000")
    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(DATA)}"


def test_if_range_with_the_etag_or_the_date():
    response, body = answer(RANGE="bytes=0-9", IF_RANGE=ETAG)
    assert response.status_code == 206 and body == DATA[:10]
    response, body = answer(RANGE="bytes=0-9", IF_RANGE='"another-version"')
    assert response.status_code == 200 and body == DATA
    response, body = answer(RANGE="bytes=0-9", IF_RANGE=http_date(WHEN.timestamp()))
    assert response.status_code == 206
    response, body = answer(RANGE="bytes=0-9", IF_RANGE=http_date(WHEN.timestamp() - 60))
    assert response.status_code == 200 and body == DATA
    # A weak validator never satisfies If-Range.
    response, _body = answer(RANGE="bytes=0-9", IF_RANGE="W/" + ETAG)
    assert response.status_code == 200


def test_conditional_get_is_304():
    assert answer(IF_NONE_MATCH=ETAG)[0].status_code == 304
    assert answer(IF_MODIFIED_SINCE=http_date(WHEN.timestamp()))[0].status_code == 304
    assert answer(IF_NONE_MATCH='"other"')[0].status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"RANGE": "bytes=10-19"}, {"RANGE": "bytes=0-1,5-6"}, {"RANGE": "bytes=99999-"}]
)
def test_head_answers_the_headers_of_get(headers):
    got, _body = answer("get", **headers)
    head, body = answer("head", **headers)
    assert body == b"" and head.status_code == got.status_code
    ignore = {"Content-Type"} if "," in headers.get("RANGE", "") else set()  # a new boundary each time
    assert {k: v for k, v in head.items() if k not in ignore} == {
        k: v for k, v in got.items() if k not in ignore
    }
