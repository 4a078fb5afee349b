"""RQ entry points of exports: thin, take ids, safe to run twice."""

from . import services


def export_image_job(*, export_id: str) -> None:
    """Queue `default`: write one exported file of an image into its storage."""
    services.export_run(export_id=export_id)


def exports_expire_job() -> str:
    """Queue `maintenance`, hourly (images/cron.py): delete exports past their retention."""
    return f"{services.exports_expire()} exports expired"
