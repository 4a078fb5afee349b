import os
import shutil

import django_rq
import pytest
from django.test import Client
from django.utils import translation

from tenants import services
from tenants.models import Membership

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts and ends in the default language: a request through LocaleMiddleware (a client
    with a Chinese cookie) leaves its language active in the thread, as a web server's thread keeps it
    until its next request, and messages made later in the test's thread would be in it."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def _isolated_dirs(settings, tmp_path):
    settings.STAGING_ROOT = tmp_path / "staging"
    settings.STORAGE_ROOT = tmp_path / "storage"
    settings.STAGING_ROOT.mkdir()
    settings.STORAGE_ROOT.mkdir()


@pytest.fixture
def make_user(db):
    def make(username, *, staff=False):
        user = services.user_create(username=username, password=PASSWORD)
        if staff:
            user.is_staff = True
            user.is_superuser = True
            user.save()
        return user

    return make


@pytest.fixture
def tenant(db, make_user):
    tenant = services.tenant_create(name="acme")
    services.membership_add(tenant=tenant, user=make_user("acme-owner"), role=Membership.Role.OWNER)
    return tenant


@pytest.fixture
def other_tenant(db, make_user):
    tenant = services.tenant_create(name="globex")
    services.membership_add(tenant=tenant, user=make_user("globex-owner"), role=Membership.Role.OWNER)
    return tenant


def _client_for(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def owner(tenant):
    return tenant.memberships.get(role=Membership.Role.OWNER).user


@pytest.fixture
def owner_client(owner):
    return _client_for(owner)


@pytest.fixture
def subaccount(tenant, make_user):
    user = make_user("acme-viewer")
    services.membership_add(tenant=tenant, user=user, permission=Membership.Permission.VIEW)
    return user


@pytest.fixture
def subaccount_client(subaccount):
    return _client_for(subaccount)


@pytest.fixture
def manager(tenant, make_user):
    user = make_user("acme-manager")
    services.membership_add(tenant=tenant, user=user, permission=Membership.Permission.MANAGE)
    return user


@pytest.fixture
def manager_client(manager):
    return _client_for(manager)


@pytest.fixture
def admin_user(make_user):
    return make_user("platform-admin", staff=True)


@pytest.fixture
def admin_client(admin_user):
    return _client_for(admin_user)


@pytest.fixture
def other_client(other_tenant):
    return _client_for(other_tenant.memberships.get(role=Membership.Role.OWNER).user)


@pytest.fixture
def rq_redis():
    """The suite's Redis, emptied before each test that uses it."""
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield connection
    connection.flushdb()


@pytest.fixture
def run_jobs(rq_redis):
    """Run every queued job through a real RQ worker in burst mode, in this process.

    SimpleWorker runs jobs without forking, so they share the test's database connection and see
    rows the test has not committed. Returns the number of jobs that failed.
    """
    from rq import SimpleWorker
    from rq.registry import FailedJobRegistry

    def run(queues=("imports", "convert", "default", "maintenance")):
        rq_queues = [django_rq.get_queue(name) for name in queues]
        worker = SimpleWorker(rq_queues, connection=rq_redis)
        worker.work(burst=True, with_scheduler=False)
        return sum(FailedJobRegistry(queue=q).count for q in rq_queues)

    return run


@pytest.fixture(scope="session")
def chromium_path():
    path = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(path):
        pytest.fail(
            f"Chromium not found at {path}: install it (apt-get install chromium) or set CHROMIUM_PATH"
        )
    return path


@pytest.fixture
def browser_page(chromium_path, live_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(base_url=live_server.url, accept_downloads=True)
        page = context.new_page()
        page.set_default_timeout(15000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture(scope="session")
def s3_endpoint():
    """A real S3 endpoint over HTTP for the session: moto in server mode on 127.0.0.1, a free port.

    Returns its URL ("http://127.0.0.1:PORT"); any access key and secret key are accepted. Tests should
    use buckets of their own (moto keeps every bucket until the session ends).
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """A migrated SQLite file that tests serving the console from other processes copy (tests/livesite.py)."""
    from django.db import connection

    from tests.livesite import migrated_sqlite

    if connection.vendor != "sqlite":
        return None
    return migrated_sqlite(tmp_path_factory.mktemp("sqlite-template"))
