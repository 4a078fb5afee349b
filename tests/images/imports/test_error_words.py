"""An import's error is worded in the reader's language, whatever language the worker ran in: the image
keeps the message's words (msgid and values), and pages, API and the operation log word them again."""

import pickle

import pytest
from django.utils import translation

from imageconsole.core.words import Message, gettext, message_of, render_words, words_of
from images.inspection import ImportRefused
from images.models import Image
from tenants import services
from tenants.models import OperationLog

from .conftest import MiB, send_file

CHINESE = "不是 raw 镜像"
ENGLISH = "qcow2, not a raw image"


@pytest.fixture
def failed(standalone, start_import, run_jobs, django_capture_on_commit_callbacks, disks):
    """A qcow2 sent as raw, refused while English was the language (as in a worker)."""
    qcow2 = disks.convert(disks.raw(size=2 * MiB), "qcow2")
    with translation.override("en"):
        image = start_import(standalone, "raw")
        with django_capture_on_commit_callbacks(execute=True):
            try:
                send_file(image, qcow2)
            except ImportRefused:
                pass
        with django_capture_on_commit_callbacks(execute=True):
            run_jobs()
    image.refresh_from_db()
    assert image.status == Image.Status.FAILED
    return image


def test_the_stored_error_is_english_and_keeps_its_words(failed):
    assert ENGLISH in failed.error
    assert failed.error_words["m"].startswith("The file is %(detected)s, not a %(claimed)s image.")
    with translation.override("zh-hans"):
        assert CHINESE in failed.error_text
    with translation.override("en"):
        assert failed.error_text == failed.error


def test_a_chinese_reader_sees_the_error_in_chinese(owner_client, failed):
    owner_client.cookies["django_language"] = "zh-hans"
    html = owner_client.get(f"/images/{failed.pk}/").content.decode()
    assert CHINESE in html and ENGLISH not in html
    listing = owner_client.get("/images/").content.decode()
    assert CHINESE in listing and ENGLISH not in listing
    log = owner_client.get("/tenants/operation-log/").content.decode()
    assert CHINESE in log


def test_the_api_words_the_error_in_the_requests_language(client, owner, failed):
    _token, key = services.api_token_create(user=owner)
    headers = {"HTTP_AUTHORIZATION": f"Token {key}"}
    chinese = client.get(f"/api/v1/images/{failed.pk}/", HTTP_ACCEPT_LANGUAGE="zh-hans", **headers).json()
    assert CHINESE in chinese["error"]
    english = client.get(f"/api/v1/images/{failed.pk}/", HTTP_ACCEPT_LANGUAGE="en", **headers).json()
    assert ENGLISH in english["error"]


def test_the_log_entry_keeps_the_words_too(failed):
    entry = OperationLog.objects.filter(target_id=str(failed.pk), result=OperationLog.Result.FAILURE).get()
    assert entry.message_code.startswith("The file is %(detected)s")
    with translation.override("zh-hans"):
        assert CHINESE in entry.display_message


def test_a_message_survives_pickling_and_nesting():
    with translation.override("en"):
        inner = gettext("The import was cancelled.")
        outer = gettext("qemu-img could not read the image: %(error)s") % {"error": inner}
    assert isinstance(outer, Message) and str(outer).endswith("The import was cancelled.")
    again = pickle.loads(pickle.dumps(outer))
    assert again.words() == outer.words()
    with translation.override("zh-hans"):
        worded = render_words(words_of(outer), str(outer))
    assert "qemu-img" in worded and "cancelled" not in worded
    assert message_of(ImportRefused(outer)) is outer
    assert words_of("plain text") is None and render_words(None, "plain text") == "plain text"
