"""`make run`: migrate, create the demo accounts once, then run Redis (when REDIS_URL is unset), an RQ
worker with its scheduler, the periodic jobs and the web server until Ctrl-C, which stops everything this started."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from imageconsole.localredis import start_private_redis  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()
PYTHON = sys.executable
MANAGE = [PYTHON, str(BASE_DIR / "manage.py")]


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DEBUG", "1")
    port = env.setdefault("PORT", "8000")
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    redis_env = VAR_DIR / "redis.env"

    width = 6

    def start(name: str, command: list[str]) -> subprocess.Popen:
        # Own session: Ctrl-C reaches only this script, which stops the children in reverse order
        # (web server, worker, then Redis), so the worker never sees Redis vanish under it.
        # Each line a child writes is printed with its name in front: "web   | GET /images/ 200".
        child = subprocess.Popen(
            command,
            env={**env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=_prefix_lines, args=(name.ljust(width), child.stdout), daemon=True).start()
        children.append(child)
        return child

    def stop(*_args):
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave children behind
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, lambda *a: (stop(), sys.exit(0)))
    try:
        if not env.get("REDIS_URL"):
            process, env["REDIS_URL"] = start_private_redis(
                VAR_DIR / "redis", persist=True, start_new_session=True
            )
            children.append(process)
            # Commands run from another shell (manage.py reconcile, rqstats) need the same address.
            redis_env.write_text(f"export REDIS_URL='{env['REDIS_URL']}'\n")
            print(f"Redis: private server at {env['REDIS_URL']}")
            print(f"  for manage.py in another shell: . {os.path.relpath(redis_env)}")
        subprocess.run([*MANAGE, "migrate", "--no-input", "-v", "0"], env=env, check=True)
        subprocess.run([*MANAGE, "demo"], env=env, check=True)
        _demo_compute_host(env)
        start(
            "worker",
            [*MANAGE, "rqworker", "imports", "convert", "default", "maintenance", "--with-scheduler"],
        )
        start("cron", [*MANAGE, "rqcron", "imageconsole.cron"])  # periodic jobs: the reconciler, sweeps
        start("web", [*MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"])
        print(f"\nThe console is at http://127.0.0.1:{port}/  (Ctrl-C stops it)\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process stopped; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
        redis_env.unlink(missing_ok=True)


def _prefix_lines(prefix: str, stream) -> None:
    for line in stream:
        sys.stdout.write(f"{prefix}| {line}")
        sys.stdout.flush()


def _demo_compute_host(env: dict) -> None:
    """This machine as the demo compute host through libvirt (virtlogd and libvirtd started when no
    libvirt daemon answers). Without libvirt the console still runs, without VMs."""
    from compute.daemon import ensure_libvirtd

    try:
        print(f"libvirt: {ensure_libvirtd()}")
    except RuntimeError as error:
        print(f"libvirt: {error}; no compute host added", file=sys.stderr)
        return
    command = [*MANAGE, "addcomputehost", "--name", env.get("DEMO_COMPUTE_HOST", "this-machine")]
    command += ["--uri", "qemu:///system", "--virt-type", env.get("DEMO_COMPUTE_VIRT_TYPE", "auto")]
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        print("libvirt: the demo compute host did not connect (see above)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
