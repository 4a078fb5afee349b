"""The RQ worker the console runs (settings.RQ["WORKER_CLASS"], so `manage.py rqworker` uses it).

rq's Worker forks a work horse per job. Whatever the job imports that the worker had not imported is
imported again in every horse: the modules of a URL fetch alone took 112 ms here, between the job's
start and its first byte, for every URL import. This worker imports the jobs' modules once, before it
forks any horse, then freezes what it loaded out of the garbage collector's sight (a full collection
walked it all in every horse: 94 ms of each job, imageconsole/core/memory.py), and is rq's Worker in
everything else.
"""

from __future__ import annotations

import importlib

from rq import Worker as RQWorker

from imageconsole.core.memory import freeze_startup_objects

# The job modules (the functions the apps enqueue by name) and what they import when they run.
PRELOAD = (
    "images.jobs",
    "images.downloads.jobs",
    "compute.jobs",
    "recyclebin.jobs",
    "openstack.jobs",
    "images.fetch",
    "images.fetch.http",
    "images.fetch.ftp",
    "images.fetch.sftp",
    "images.fetch.storagefile",
    "images.services.receiving",
    "images.services.hostkeys",
    "images.signatures",
    "compute.services.ova",
    "compute.services.bootcheck",
    "oslo_utils.imageutils.format_inspector",
)


def preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)


class Worker(RQWorker):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        preload()
        freeze_startup_objects()
