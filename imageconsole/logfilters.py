"""Keep the web log readable under `make run`: RQ's worker and cron scheduler write several INFO lines per
job (dequeued, "Successfully completed", "Job OK", result kept, cron's "Enqueued ..."), which drowned
the requests. This filter lets through one INFO line per job (RQ's "Successfully completed <job> in
<time>"), the lines a process writes when it starts or stops, and every warning and error."""

import logging

# RQ's INFO message templates that say nothing a person needs once per job.
QUIET_PREFIXES = (
    "Worker %s: %s: %s",  # dequeued, and "Job OK" (the "Successfully completed" line says it)
    "Worker %s: job %s result",  # result kept / discarded
    "Worker %s: cleaning",
    "Worker %s: subscribing",
    "Worker %s: unsubscribing",
    "Enqueued job",  # cron: the job's own line says it ran
    "CronScheduler %s: re-registered",
)


class OneLinePerJob(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO or not record.name.startswith("rq."):
            return True
        template = str(record.msg)
        if record.name == "rq.scheduler":
            return False  # the worker's scheduler thread: "enqueued scheduled jobs" every few seconds
        return not template.startswith(QUIET_PREFIXES)
