"""Quiet logs under `make run`: at most one INFO line per RQ job, and each process's lines carry its name."""

import importlib
import io
import logging
import sys
from pathlib import Path

import django_rq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))


def noop(n):
    return n


def test_a_worker_writes_one_line_per_job(rq_redis, settings):
    """A real worker runs three jobs; the console handler's filter (from settings.LOGGING) passes one
    line for each."""
    from rq import SimpleWorker

    config = settings.LOGGING["filters"]["one_line_per_job"]["()"]
    module, name = config.rsplit(".", 1)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(getattr(importlib.import_module(module), name)())
    rq_logger = logging.getLogger("rq.worker")
    rq_logger.addHandler(handler)
    queue = django_rq.get_queue("default")
    try:
        for n in range(3):
            queue.enqueue(noop, n)
        SimpleWorker([queue], connection=rq_redis).work(
            burst=True, with_scheduler=False, logging_level="INFO"
        )
    finally:
        rq_logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    per_job = [line for line in lines if "tests.test_quiet_logs.noop" in line]
    assert len(per_job) == 3, lines
    assert all(line.startswith("Successfully completed") for line in per_job)
    assert not [line for line in lines if "result is kept" in line or "Job OK" in line], lines


def test_make_run_prefixes_each_line_with_the_process_name(capsys):
    import run

    run._prefix_lines("worker", io.StringIO("started\nJob OK\n"))
    assert capsys.readouterr().out == "worker| started\nworker| Job OK\n"
