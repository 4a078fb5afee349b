"""Every console page in Chromium at 1280x800 and 1920x1080, in English and Simplified Chinese.

The run saves a full-page screenshot of each under SCREENSHOT_DIR (default: test-results/screenshots/,
git-ignored) for people to look at, and checks what a person would see first:
- the image list fits a 1280 px window (no horizontal scrollbar: the document is as wide as the window),
  20 rows of one line each, the operations column in view;
- a Chinese page shows no English word outside an allow-list of product names, formats and units
  (and the test's own data: names users gave).
"""

import os
import re
from pathlib import Path

import pytest
from django.utils import timezone, translation

from images.inspection import mismatch_message
from images.models import Image
from images.services import import_cancel, import_fail
from storage.services import storage_create_default
from tenants import services
from tenants.models import Membership
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOT_DIR = Path(
    os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "test-results" / "screenshots"
)
SIZES = {"1280": (1280, 800), "1920": (1920, 1080)}
LANGUAGES = ("en", "zh-hans")

# Words a Chinese page may show: product and protocol names, formats, units, architectures.
ALLOWED_WORDS = {
    # formats and units
    "qcow",
    "raw",
    "vmdk",
    "vhd",
    "vhdx",
    "ova",
    "iso",
    "ISO",
    "QCOW",
    "RAW",
    "VMDK",
    "VHD",
    "VHDX",
    "OVA",
    "KB",
    "MB",
    "GB",
    "TB",
    "KiB",
    "MiB",
    "GiB",
    "TiB",
    "bytes",
    "MD",
    "SHA",
    "CHECKSUM",
    "OpenPGP",
    "ID",
    "URL",
    "API",
    "Excel",
    "HTTP",
    "HTTPS",
    "FTP",
    "SFTP",
    "JSON",
    "SSH",
    "IP",
    "CPU",
    # systems, firmware, agents
    "Linux",
    "Windows",
    "Server",
    "CentOS",
    "Ubuntu",
    "Kylin",
    "Debian",
    "Rocky",
    "AlmaLinux",
    "openEuler",
    "SUSE",
    "UEFI",
    "BIOS",
    "Legacy",
    "CSM",
    "VirtIO",
    "cloud-init",
    "qemu-ga",
    "qemu-img",
    "cloud",
    "init",
    "qemu",
    "ga",
    "img",
    "x",
    "aarch",
    "mips",
    "el",
    "tus",
    "S",
    "OpenStack",
    "Glance",
    "Django",
    "RQ",
    # the language switcher names the other language in that language
    "English",
    # keyboard keys, and products the custom image guide names
    "Ctrl",
    "Mac",
    "Azure",
    "Cloudbase",
    "Hyper",
    "KVM",
    "LVM",
    "QEMU",
    "RHEL",
    "VDI",
    "VMware",
    "VirtualBox",
    "IMG",
    "Init",
    "Red",
    "Hat",
    "Enterprise",
    "Fedora",
    "openSUSE",
    "UOS",
    "Alma",
}
# The test's own data: names people typed are not the console's words.
DATA_WORDS = {
    "acme",
    "globex",
    "owner",
    "viewer",
    "web",
    "db",
    "frontend",
    "backend",
    "cache",
    "legacy",
    "base",
    "image",
    "ad",
    "controller",
    "team",
    "prod",
    "ops",
    "primary",
    "replica",
    "installer",
    "storage",
    "default",
    "local",
    "disk",
    "images",
    "var",
    "tmp",
    "pytest",
    "of",
    "root",
    "vm",
    "import",
    "prodweb",
}
# Shown as written, not translated: commands, file names and free text entered by people. An import's
# error is checked: it is worded in the reader's language (imageconsole.core.words).
UNCHECKED = "code, pre, kbd, .font-monospace, [data-testid=image-id], [data-as-written]"
# The custom image guide's commands, options and driver names, quoted in its sentences.
GUIDE_TERMS = {
    "agent",
    "backing",
    "blk",
    "convert",
    "file",
    "ftp",
    "guest",
    "http",
    "https",
    "id",
    "info",
    "initramfs",
    "machine",
    "net",
    "scsi",
    "sftp",
    "shell",
    "utils",
    "virtio",
    "win",
}


def _seed():
    tenant = services.tenant_create(name="acme")
    owner = services.user_create(username="acme-owner", password=PASSWORD)
    services.membership_add(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    viewer = services.user_create(username="acme-viewer", password=PASSWORD)
    services.membership_add(tenant=tenant, user=viewer, permission=Membership.Permission.VIEW)
    other = services.tenant_create(name="globex")
    group = services.project_group_create(tenant=tenant, name="web-team")
    storage = storage_create_default()
    storage.description = ""  # the test's data: the default storage's description is written in English
    storage.save(update_fields=["description"])
    systems = [
        ("linux", "CentOS", "7.9"),
        ("linux", "Ubuntu", "24.04"),
        ("windows", "Windows", "Windows Server 2022"),
        ("linux", "Debian", "12"),
        ("linux", "Rocky Linux", "9.4"),
    ]
    for n in range(22):
        os_type, platform, version = systems[n % len(systems)]
        Image.objects.create(
            tenant=tenant,
            owner=owner,
            storage=storage,
            name=f"web-frontend-{n:02d}" if n % 3 else f"db-primary-replica-with-a-long-name-{n:02d}",
            description="prod web tier" if n % 4 == 0 else "",
            disk_format="qcow2",
            os_type=os_type,
            platform=platform,
            os_version=version,
            status="available",
            stage="",
            progress=100,
            size=(n + 1) * 700 * 1024**2,
            virtual_size=20 * 1024**3,
            cloud_init=n % 2 == 0,
            qemu_ga=n % 3 == 0,
            hot_upgrade=n % 5 == 0,
            labels=["prod", "web"] if n % 2 else [],
            project_group=group if n % 2 else None,
        )
    importing = Image.objects.create(
        tenant=tenant,
        owner=owner,
        storage=storage,
        name="web-backend-import",
        disk_format="qcow2",
        platform="Ubuntu",
        os_version="22.04",
        status="uploading",
        stage="receiving",
        progress=42,
        bytes_done=420 * 1024**2,
        bytes_total=1000 * 1024**2,
        bytes_per_second=38 * 1024**2,
    )
    failed = Image.objects.create(
        tenant=tenant,
        owner=owner,
        storage=storage,
        name="web-cache",
        disk_format="qcow2",
        platform="CentOS",
        os_version="7.6",
        status="uploading",
        stage="inspecting",
    )
    with translation.override("en"):  # as a worker words it; each reader sees it in their language
        import_fail(image_id=failed.pk, message=mismatch_message("qcow2", "raw"))
    cancelled = Image.objects.create(
        tenant=tenant,
        owner=owner,
        storage=storage,
        name="web-legacy",
        disk_format="raw",
        status="uploading",
        stage="receiving",
    )
    import_cancel(image=cancelled, actor=owner)
    Image.objects.create(
        tenant=tenant,
        owner=owner,
        storage=storage,
        name="installer",
        kind="iso",
        disk_format="iso",
        os_type="other",
        status="available",
        stage="",
        progress=100,
        size=900 * 1024**2,
    )
    shared = Image.objects.create(
        tenant=other,
        name="globex-base",
        disk_format="qcow2",
        status="available",
        stage="",
        sharing="global",
    )
    Image.objects.filter(pk=shared.pk).update(created_at=timezone.now())
    return {
        "tenant": tenant,
        "failed": failed,
        "importing": importing,
        "available": Image.objects.filter(tenant=tenant, status="available", kind="system").first(),
    }


def _pages(data):
    available, failed, importing = data["available"], data["failed"], data["importing"]
    return [
        ("dashboard", "/"),
        ("images", "/images/"),
        ("images-more-filters", "/images/?architecture=x86_64"),
        ("iso-images", "/images/iso/"),
        ("import", "/images/import/"),
        ("import-iso", "/images/import/?kind=iso"),
        ("import-again", f"/images/import/?from={failed.pk}"),
        ("detail", f"/images/{available.pk}/"),
        ("detail-failed", f"/images/{failed.pk}/"),
        ("detail-importing", f"/images/{importing.pk}/"),
        ("upload-failed", f"/images/{failed.pk}/upload/"),
        ("edit", f"/images/{available.pk}/edit/"),
        ("labels", f"/images/{available.pk}/labels/"),
        ("sharing", f"/images/{available.pk}/sharing/"),
        ("delete", f"/images/{available.pk}/delete/"),
        ("guide", "/images/guide/"),
        ("recycle-bin", "/recycle-bin/"),
        ("vms", "/vms/"),
        ("storages", "/storages/"),
        ("project-groups", "/tenants/project-groups/"),
        ("members", "/tenants/members/"),
        ("operation-log", "/tenants/operation-log/"),
        ("password", "/accounts/password/"),
        ("not-found", "/images/00000000-0000-4000-8000-000000000000/"),
    ]


def _login(page, username):
    page.goto("/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("#id_password").press("Enter")
    page.wait_for_load_state()


def _goto_settled(page, url):
    """The page loaded, its fonts ready and no htmx request, swap or settle under way (the health card
    asks for its checks on load). Not Playwright's "networkidle", which waits for 500 ms of silence on
    every one of the hundred pages this file shows."""
    page.goto(url)
    page.wait_for_function(
        "() => document.fonts.status === 'loaded'"
        " && !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )


def _english_words(page) -> set[str]:
    text = page.evaluate(
        """(selector) => {
            const hidden = [...document.querySelectorAll(selector)];
            const before = hidden.map((el) => el.style.display);
            hidden.forEach((el) => { el.style.display = "none"; });
            const text = document.body.innerText;
            hidden.forEach((el, i) => { el.style.display = before[i]; });
            return text;
        }""",
        UNCHECKED,
    )
    words = set()
    for token in re.findall(r"[A-Za-z][A-Za-z0-9_.-]*", text):
        if any(ch.isdigit() for ch in token):
            continue  # ids, versions, sizes, file names
        for word in re.split(r"[-_.]", token):
            if len(word) > 1 and word not in ALLOWED_WORDS and word.lower() not in DATA_WORDS:
                words.add(word)
    return words


def _check_list_fits(page):
    assert page.evaluate("() => document.documentElement.scrollWidth") == page.evaluate(
        "() => window.innerWidth"
    )
    # Complete: every default column fits, the table does not even scroll inside its box.
    wrap = page.get_by_test_id("image-table-wrap")
    assert wrap.evaluate("(el) => el.scrollWidth <= el.clientWidth"), page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=image-table] th')].map(t => [t.dataset.column, Math.round(t.getBoundingClientRect().width)])"
    )
    rows = page.get_by_test_id("image-row")
    assert rows.count() == 20
    heights = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=image-row]')].map(r => r.getBoundingClientRect().height)"
    )
    line = page.evaluate(
        "() => parseFloat(getComputedStyle(document.querySelector('[data-testid=image-row] td')).lineHeight)"
    )
    assert max(heights) < 2 * line + 12, (heights, line)  # one line of text (plus padding), never two
    assert max(heights) - min(heights) < 2
    boxes = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=image-row] td[data-column=operations]')]"
        ".map(c => { const b = c.getBoundingClientRect(); return [b.left, b.right, b.width]; })"
    )
    width = page.evaluate("() => window.innerWidth")
    assert len(boxes) == 20
    for left, right, cell_width in boxes:
        assert cell_width > 0 and left >= 0 and right <= width, (left, right, width)
    more = page.get_by_test_id("row-actions").first
    assert more.is_visible()
    box = more.bounding_box()
    assert box["x"] + box["width"] <= width


def test_every_page_at_two_sizes_in_two_languages(browser_page, live_server):
    data = _seed()
    page = browser_page
    _login(page, "acme-owner")
    leftovers = {}
    for language in LANGUAGES:
        page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            directory = SCREENSHOT_DIR / f"{language}-{size}"
            directory.mkdir(parents=True, exist_ok=True)
            for name, url in _pages(data):
                _goto_settled(page, url)
                page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
                if language == "zh-hans" and size == "1280":
                    words = _english_words(page) - (GUIDE_TERMS if name == "guide" else set())
                    if words:
                        leftovers[name] = sorted(words)
                if name == "images" and size == "1280":
                    _check_list_fits(page)
    assert not leftovers, f"English words on Chinese pages: {leftovers}"


def test_the_viewers_list_has_no_empty_operations_column(browser_page, live_server):
    _seed()
    page = browser_page
    _login(page, "acme-viewer")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto("/images/")
    assert page.get_by_test_id("image-row").count() == 20
    # A view-only account may still download and create VMs: its operations column is there because
    # its rows have operations (an image still importing has none), never an empty column.
    texts = page.locator("tbody [data-column=operations]").all_inner_texts()
    assert sum(1 for text in texts if "Download" in text) >= 15, texts  # the available own images
    assert page.evaluate("() => document.documentElement.scrollWidth") == 1280
    directory = SCREENSHOT_DIR / "en-1280"
    directory.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(directory / "images-viewer.png"), full_page=True)
    # An edit address says why it is refused, in the console's shell.
    response = page.goto(f"/images/{Image.objects.filter(status='available').first().pk}/edit/")
    assert response.status == 403
    assert (
        "may view this tenant's resources but not change them"
        in page.get_by_test_id("error-reason").inner_text()
    )
    page.screenshot(path=str(directory / "error-403.png"), full_page=True)
