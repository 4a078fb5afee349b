"""Periodic jobs of the recycle bin, for RQ's cron scheduler (imageconsole/cron.py imports this)."""

from rq import cron

from recyclebin.jobs import recyclebin_sweep_job

cron.register(recyclebin_sweep_job, queue_name="maintenance", interval=60, job_timeout=600)
