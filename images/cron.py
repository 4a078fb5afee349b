"""Periodic jobs of the images app, for RQ's cron scheduler: `manage.py rqcron images.cron`."""

from rq import cron

from images.downloads.jobs import exports_expire_job
from images.jobs import data_sweep_job, reconcile_job

cron.register(reconcile_job, queue_name="maintenance", interval=60, job_timeout=600)
# The sweeps: expired staging files, and chunks or objects no replica references past the grace period.
cron.register(data_sweep_job, queue_name="maintenance", interval=3600, job_timeout=6 * 3600)
cron.register(exports_expire_job, queue_name="maintenance", interval=3600, job_timeout=1800)
