"""Loaded with `-p tests.plugin` before pytest-django sets Django up.

A `{% url ... as var %}` in one of the project's own templates raises NoReverseMatch in tests instead of
leaving `var` empty (and a button silently missing): see `_strict_url_tag`.

The suite's jobs go through a real Redis: TEST_REDIS_URL when given (the tests flush it), otherwise a
private redis-server started for the run on a Unix socket in a temporary directory, so that nobody
else's Redis data is touched.
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_redis_process = None
_redis_dir = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _redis_process, _redis_dir
    os.environ["SECURE_COOKIES"] = "0"
    # Playwright's sync API keeps an event loop in the test thread; the ORM calls made there are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    if os.environ.get("TEST_REDIS_URL"):
        os.environ["REDIS_URL"] = os.environ["TEST_REDIS_URL"]
        return
    from imageconsole.localredis import start_private_redis

    _redis_dir = Path(tempfile.mkdtemp(prefix="imageconsole-test-redis-"))
    _redis_process, os.environ["REDIS_URL"] = start_private_redis(_redis_dir, persist=False)


_PROJECT = Path(__file__).resolve().parent.parent


def _strict_url_tag():
    """Django's `{% url name as var %}` swallows a NoReverseMatch. In our templates (not Django's or a
    library's, which rely on it) reverse the name once more without swallowing, so a missing or
    mistyped URL name fails the test that renders it."""
    from django.template.defaulttags import URLNode
    from django.urls import reverse

    original = URLNode.render

    def render(self, context):
        origin = getattr(getattr(self, "origin", None), "name", "") or ""
        if self.asvar is not None and origin.startswith(str(_PROJECT)) and "/.venv/" not in origin:
            reverse(
                self.view_name.resolve(context),
                args=[arg.resolve(context) for arg in self.args],
                kwargs={key: value.resolve(context) for key, value in self.kwargs.items()},
            )
        return original(self, context)

    URLNode.render = render


@pytest.hookimpl(tryfirst=True)  # (before xdist's own: one per CPU)
def pytest_xdist_auto_num_workers(config):
    """`-n auto` starts one pytest worker more than there are CPUs (PYTEST_XDIST_AUTO_NUM_WORKERS sets
    the number: then xdist's own hook answers). The suite spends much of its time waiting on other
    processes (guests booting under emulation, browsers, RQ workers, qemu-img): with one worker per CPU
    the two CPUs here sat 34% idle and the suite took 10 min; with three workers, 19% idle and 8 min."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return (os.cpu_count() or 1) + 1


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    _strict_url_tag()


def pytest_unconfigure(config):
    if _redis_process is not None:
        _redis_process.terminate()
        _redis_process.wait(timeout=10)
        shutil.rmtree(_redis_dir, ignore_errors=True)
