"""Periodic jobs of the compute app: VM states read from libvirt."""

from rq import cron

from compute.jobs import vm_refresh_job

cron.register(vm_refresh_job, queue_name="maintenance", interval=30, job_timeout=300)
