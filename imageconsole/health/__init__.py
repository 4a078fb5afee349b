"""The console's own health: what the web process and the workers need, and whether it works here.

`manage.py doctor` prints it; the dashboard shows it to platform administrators. Both call
`run_checks()`, which returns a list of `Check`s:

- qemu-img: its version, here and on each worker;
- Redis: reachable, and the same one the workers use (they register in RQ's worker registry there);
- workers: alive per queue (a registered worker whose process is gone counts as stopped), and the
  periodic-jobs scheduler (`rqcron`);
- storages: each writable (here and on the workers) with free space above its reserved capacity;
- staging: a worker on every queue reads a marker file the web process wrote into STAGING_ROOT;
- libvirt hosts: reachable (only once the compute app has a ComputeHost model).
"""

from .checks import Check, Status, run_checks

__all__ = ["Check", "Status", "run_checks"]
