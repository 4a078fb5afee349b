"""Start-up and logs stay quiet where nothing is wrong: no system-check warning on either database, and a
refused request (403) logs one line, not a traceback."""

import logging

from django.core.management import call_command


def test_system_checks_with_the_database_raise_no_warning(db):
    # On SQLite the PostgreSQL-only covering index would warn (models.W040) at every start.
    call_command("check", "--database", "default", "--fail-level", "WARNING")


def test_a_403_logs_one_line_without_a_traceback(subaccount_client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = subaccount_client.post("/tenants/project-groups/new/", {"name": "ops"})
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    assert records[0].exc_info is None and records[0].exc_text is None
    assert records[0].getMessage().startswith("Forbidden")
    assert "Traceback" not in caplog.text
