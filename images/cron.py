"""Periodic jobs of the images app, for RQ's cron scheduler: `manage.py rqcron images.cron`."""

from rq import cron

from images.jobs import reconcile_job

cron.register(reconcile_job, queue_name="maintenance", interval=60, job_timeout=600)
