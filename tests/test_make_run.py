"""`make run` (scripts/run.py) writes its private Redis address to var/redis.env, so that a command run
from another shell (`. var/redis.env; manage.py reconcile`) reaches the Redis its workers use."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_make_run_writes_redis_env_for_other_shells(tmp_path):
    var = tmp_path / "var"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(VAR_DIR=str(var), PORT=str(free_port()))
    run = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run.py")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        redis_env = var / "redis.env"
        shell = f". {redis_env} && {sys.executable} {ROOT / 'manage.py'} reconcile"
        deadline = time.monotonic() + 90
        while True:
            assert run.poll() is None, run.stdout.read()
            if redis_env.exists():
                # The worker registers a moment after start: until then reconcile refuses.
                result = subprocess.run(
                    ["bash", "-c", shell], cwd=ROOT, env=env, capture_output=True, text=True
                )
                if result.returncode == 0:
                    break
                assert "No RQ worker listens" in result.stderr, result.stderr
            assert time.monotonic() < deadline, "make run did not come up in 90 s"
            time.sleep(1)
        assert redis_env.read_text().startswith("export REDIS_URL='unix://")

        # The same command without the file talks to the default address, where no worker listens.
        plain = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "reconcile"],
            cwd=ROOT,
            env={**env, "REDIS_URL": "unix:///nonexistent/redis.sock"},
            capture_output=True,
            text=True,
        )
        assert plain.returncode != 0 and "does not answer" in plain.stderr
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
    assert not (var / "redis.env").exists()
