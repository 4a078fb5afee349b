"""How the long-lived processes set themselves up: web and worker processes limit glibc's malloc arenas
(imageconsole/core/memory.py: an import's threads would otherwise each keep an arena of freed megabytes),
and the RQ worker imports the jobs' modules before it forks (imageconsole/worker.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

BASE = Path(__file__).resolve().parents[1]

# Eight threads allocate at once (as an import's do), then glibc prints one "Arena N:" block per arena.
COUNT_ARENAS = """
import ctypes, threading
{setup}
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    kept = [bytes(1000 + i) for i in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
ctypes.CDLL("libc.so.6").malloc_stats()
"""


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter of this venv, with the project's settings and nothing else set."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE,
        env={"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "imageconsole.settings", **env},
        capture_output=True,
        text=True,
        check=True,
    )


def arenas(setup: str, **env) -> int:
    return run_python(COUNT_ARENAS.format(setup=setup), **env).stderr.count("Arena ")


@pytest.mark.skipif(not Path("/lib/x86_64-linux-gnu/libc.so.6").exists(), reason="glibc only")
def test_the_web_and_worker_entry_points_keep_two_arenas():
    assert arenas("") > 2  # what a process gets without the limit
    assert arenas("import imageconsole.wsgi") <= 2
    assert arenas("import sys; sys.argv = ['manage.py', 'check']; import manage; manage.main()") <= 2
    # An operator's MALLOC_ARENA_MAX is left to glibc.
    assert arenas("import imageconsole.wsgi", MALLOC_ARENA_MAX="4") > 2


def test_the_rq_worker_imports_the_jobs_modules_before_it_forks_a_horse():
    """A module a job imports that the worker had not is imported in every work horse (0.1 s a URL
    import here); `manage.py rqworker` runs imageconsole.worker.Worker, which imports them first."""
    script = (
        "import sys, django; django.setup(); "
        "from django_rq.workers import get_worker_class; import redis; "
        "before = 'images.fetch.http' in sys.modules; "
        "get_worker_class()(['imports'], connection=redis.Redis()); "
        "print(before, all(name in sys.modules for name in __import__('imageconsole.worker').worker.PRELOAD))"
    )
    result = run_python(script)
    assert result.stdout.split() == ["False", "True"]


def test_web_and_worker_processes_freeze_what_they_loaded_before_serving():
    """A full garbage collection walked every object Django and the jobs' modules made at start-up (94 ms
    of every job in an RQ work horse): the web application and the worker freeze them first."""
    web = run_python("import gc, imageconsole.wsgi; print(gc.get_freeze_count())")
    assert int(web.stdout) > 50_000
    worker = run_python(
        "import gc, django; django.setup(); from django_rq.workers import get_worker_class; import redis; "
        "get_worker_class()(['imports'], connection=redis.Redis()); print(gc.get_freeze_count())"
    )
    assert int(worker.stdout) > 50_000
