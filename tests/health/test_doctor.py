"""`manage.py doctor` against real parts: the suite's Redis, real `manage.py rqworker` processes, a
standalone storage on a directory (read-only through a bind mount), qemu-img."""

import io
import os
import shutil
import signal
import subprocess

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from rq import Worker
from rq.cron import CronScheduler

from imageconsole.health import Status, run_checks
from imageconsole.localredis import start_private_redis

from .conftest import QUEUES


def doctor(**options) -> tuple[str, int]:
    out = io.StringIO()
    try:
        call_command("doctor", stdout=out, no_color=True, **options)
    except CommandError as error:
        return out.getvalue(), error.returncode
    return out.getvalue(), 0


def lines(output: str, prefix: str) -> list[str]:
    return [line for line in output.splitlines() if prefix in line]


def by_area(checks, area, subject=None):
    return [c for c in checks if c.area == area and (subject is None or c.subject == subject)]


@pytest.fixture
def cron_scheduler(rq_redis):
    """A cron scheduler registered as this process, as `manage.py rqcron` registers itself."""
    scheduler = CronScheduler(connection=rq_redis, name="doctor-test-cron")
    scheduler.register_birth()
    yield scheduler
    scheduler.register_death()


def test_everything_working_then_a_killed_worker(db, storage, start_worker, cron_scheduler):
    worker = start_worker()
    output, code = doctor()
    assert code == 0, output
    assert "qemu-img version" in lines(output, "qemu-img (web server)")[0]
    assert lines(output, "OK      Redis (shared with the workers)")
    for queue in QUEUES:
        (line,) = lines(output, f"Workers ({queue})")
        assert line.startswith("OK") and f":{worker.pid}" in line
        (line,) = lines(output, f"Staging ({queue})")
        assert line.startswith("OK") and "shares the staging area" in line
    (line,) = lines(output, f"qemu-img (worker {os.uname().nodename}:{worker.pid})")
    assert line.startswith("OK") and "qemu-img version" in line
    (line,) = lines(output, "Storage (local)")
    assert line.startswith("OK") and "free" in line
    assert lines(output, "OK      Periodic jobs (rqcron)")
    assert "Everything the console needs works here." in output

    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    # Killed: it could not unregister; Redis still lists it, but its process is gone.
    assert any(int(w.pid) == worker.pid for w in Worker.all(connection=cron_scheduler.connection))
    output, code = doctor(timeout=2)
    assert code == 1
    for queue in QUEUES:
        (line,) = lines(output, f"Workers ({queue})")
        assert line.startswith("PROBLEM"), line
        assert "No live worker listens on this queue" in line
        assert f"Registered but stopped (process gone or silent): {os.uname().nodename}:{worker.pid}" in line


def test_a_worker_stopped_cleanly_leaves_its_queues_unserved(db, storage, start_worker, cron_scheduler):
    worker = start_worker(queues=("convert", "maintenance"))
    worker.send_signal(signal.SIGTERM)
    worker.wait(timeout=30)
    checks = run_checks(probe_timeout=1)
    for queue in QUEUES:
        (check,) = by_area(checks, "Workers", queue)
        assert check.status == Status.PROBLEM and "No live worker" in check.detail
        assert "Registered but stopped" not in check.detail  # it said goodbye
        (staging,) = by_area(checks, "Staging", queue)
        assert staging.status == Status.WARNING and "no live worker" in staging.detail


def test_an_unreachable_redis_is_reported(db, storage, settings, tmp_path):
    url = f"unix://{tmp_path / 'no-redis.sock'}?db=0"
    settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
    output, code = doctor()
    assert code == 1
    (line,) = lines(output, "Redis (")
    assert line.startswith("PROBLEM")
    assert f"Cannot reach Redis at {url}" in line and "No job can be queued or run" in line
    assert not lines(output, "Workers (")
    assert lines(output, "Staging") and "Redis is unreachable" in lines(output, "Staging")[0]
    # What does not need Redis is still checked.
    assert lines(output, "OK      Storage (local)")


def test_a_password_in_the_redis_url_is_not_shown(db, settings):
    url = "redis://user:s3cret-pass@127.0.0.1:1/0"
    settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
    output, code = doctor()
    assert code == 1
    assert "s3cret-pass" not in output and "redis://user:***@127.0.0.1:1/0" in output


def test_a_redis_without_the_workers_is_reported(db, storage, settings, tmp_path):
    other, url = start_private_redis(tmp_path / "other-redis", persist=False)
    try:
        # The web server is configured with another Redis than the one the worker uses.
        settings.RQ_QUEUES = {name: {**config, "URL": url} for name, config in settings.RQ_QUEUES.items()}
        checks = run_checks(probe_timeout=2)
    finally:
        other.terminate()
        other.wait(timeout=10)
    reachable, shared = by_area(checks, "Redis")
    assert reachable.status == Status.OK
    assert shared.status == Status.PROBLEM and "No worker is registered in this Redis" in shared.detail


def test_staging_not_shared_with_the_worker_is_reported(db, storage, start_worker, tmp_path):
    elsewhere = tmp_path / "worker-staging"
    elsewhere.mkdir()
    worker = start_worker(staging_root=elsewhere)
    checks = run_checks(probe_timeout=10)
    for queue in QUEUES:
        (check,) = by_area(checks, "Staging", queue)
        assert check.status == Status.PROBLEM, check
        assert f":{worker.pid} does not see the file the web server wrote" in check.detail
        assert "same STAGING_ROOT" in check.detail
    assert not list((settings.STAGING_ROOT / ".doctor").iterdir()), "the marker was left behind"


def test_no_cron_scheduler_is_reported(db, storage, rq_redis):
    checks = run_checks(probe_timeout=1)
    (check,) = by_area(checks, "Periodic jobs")
    assert check.status == Status.PROBLEM and "manage.py rqcron imageconsole.cron" in check.detail


needs_mounts = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root to bind-mount a directory read-only"
)


@pytest.fixture
def read_only(tmp_path):
    """Bind-mount a directory read-only onto itself (undone after the test)."""
    mounted = []

    def make(path):
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        mounted.append(path)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)

    yield make
    for path in reversed(mounted):
        subprocess.run(["umount", str(path)], check=False)


@needs_mounts
def test_a_read_only_storage_is_reported(db, storage, read_only, rq_redis):
    from storage.backends import get_backend

    get_backend(storage).ensure_layout()
    read_only(storage.mount_path)
    output, code = doctor(timeout=1)
    assert code == 1
    (line,) = lines(output, "Storage (local)")
    assert line.startswith("PROBLEM") and "Not writable" in line and "Read-only file system" in line


@needs_mounts
def test_a_storage_read_only_on_the_worker_is_reported(db, storage, start_worker, cron_scheduler):
    from storage.backends import get_backend

    get_backend(storage).ensure_layout()
    # The worker runs in a mount namespace of its own where the storage is read-only: the web server
    # can write there, the worker cannot (a mount that is read-only on one worker host).
    path = storage.mount_path
    script = f'mount --bind "{path}" "{path}" && mount -o remount,ro,bind "{path}" && exec "$@"'
    worker = start_worker(wrapper=["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"])
    checks = run_checks(probe_timeout=10)
    here, there = by_area(checks, "Storage", "local")
    assert here.status == Status.OK
    assert there.status == Status.PROBLEM
    assert f"Not writable by worker {os.uname().nodename}:{worker.pid}" in there.detail
    assert "Read-only file system" in there.detail


def test_a_full_storage_is_reported(db, storage):
    storage.reserved_bytes = 1 << 60  # more than any disk: what is free is all reserved
    storage.save()
    (check,) = by_area(run_checks(probe_timeout=0), "Storage", "local")
    assert check.status == Status.PROBLEM and "every import is refused" in check.detail


def test_qemu_img_missing_is_reported(db, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    (check,) = by_area(run_checks(probe_timeout=0), "qemu-img")
    assert check.status == Status.PROBLEM and "apt-get install qemu-utils" in check.detail


def test_a_worker_without_qemu_nbd_is_reported(monkeypatch, tmp_path):
    """A worker converts VMDKs to qcow2 through qemu-nbd: qemu-img alone is not enough."""
    import shutil

    from imageconsole.health import probe

    (tmp_path / "qemu-img").symlink_to(shutil.which("qemu-img"))
    monkeypatch.setenv("PATH", str(tmp_path))
    detail, ok = probe._qemu_img()
    assert not ok and "qemu-nbd is not installed (apt-get install qemu-utils)" in detail


def test_libvirt_hosts_are_checked_only_when_compute_has_hosts(db):
    from django.apps import apps

    try:
        apps.get_model("compute", "ComputeHost")
    except LookupError:
        assert not by_area(run_checks(probe_timeout=0), "Libvirt hosts")
    else:
        pytest.skip("compute has hosts: see test_libvirt_host_check")


def test_libvirt_host_check():
    pytest.importorskip("libvirt")
    from imageconsole.health.hosts import libvirt_host_check

    good = libvirt_host_check("test", "test:///default")
    assert good.status == Status.OK and "test:///default answers" in good.detail
    bad = libvirt_host_check("gone", "qemu+unix:///system?socket=/nonexistent/libvirt-sock")
    assert bad.status == Status.PROBLEM and "Cannot reach qemu+unix:///system" in bad.detail


def test_compute_hosts_are_checked_through_their_libvirt_uri(monkeypatch):
    """Until compute lands its ComputeHost model, stand-in rows show how hosts are found and checked."""
    pytest.importorskip("libvirt")
    from types import SimpleNamespace

    from django.apps import apps

    from imageconsole.health.hosts import libvirt_checks

    class Host(SimpleNamespace):
        def __str__(self):
            return self.name

    rows = [Host(name="lab", uri="test:///default"), Host(name="no-uri", uri="")]
    model = SimpleNamespace(objects=SimpleNamespace(all=lambda: rows))
    real_get_model = apps.get_model
    monkeypatch.setattr(
        apps,
        "get_model",
        lambda app, name: model if (app, name) == ("compute", "ComputeHost") else real_get_model(app, name),
    )
    lab, no_uri = libvirt_checks()
    assert (lab.subject, lab.status) == ("lab", Status.OK)
    assert (no_uri.subject, no_uri.status) == ("no-uri", Status.WARNING)
