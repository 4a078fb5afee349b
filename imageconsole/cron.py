"""Every periodic job of the project, for RQ's cron scheduler: `manage.py rqcron imageconsole.cron`.

Each app registers its own jobs in `<app>/cron.py`; importing them here registers them all.
"""

import importlib

for module in ("images.cron", "storage.cron", "recyclebin.cron", "compute.cron"):
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module:
            raise
