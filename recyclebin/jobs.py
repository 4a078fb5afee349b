"""RQ entry points of the recycle bin: thin, take ids, safe to run twice."""

from .services import bin as services


def image_expunge_job(*, image_id: str) -> bool:
    """Queue `maintenance`: remove an image in `deleting` (its links, exports, data, row)."""
    return services.image_expunge_run(image_id=image_id)


def image_expire_job(*, image_id: str) -> bool:
    """Queue `maintenance`, scheduled at the image's `purge_after`: start its expunge if still due."""
    return services.image_expire(image_id=image_id)


def recyclebin_sweep_job() -> str:
    """Queue `maintenance`, every minute (recyclebin/cron.py): expunge what is due, resume lost expunges."""
    report = services.recyclebin_sweep()
    return f"expired {len(report.expired)}, resumed {len(report.resumed)}"
