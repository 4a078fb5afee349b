"""Settings, all read from the environment with defaults that work on one machine.

The README's "Configuration" table lists every variable read here.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """Use SECRET_KEY when given; otherwise generate one once and keep it under VAR_DIR."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PORT = int(os.environ.get("PORT", "8000"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_htmx",
    "django_rq",
    "imageconsole.axes_app.AxesConfig",
    "imageconsole",
    "tenants",
    "storage",
    "images",
    "recyclebin",
    "compute",
    "openstack",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "imageconsole.middleware.CurrentTenantMiddleware",
    "imageconsole.middleware.SecurityHeadersMiddleware",
    "imageconsole.errors.GoneMiddleware",
    # AxesMiddleware should be the last middleware.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "imageconsole.urls"
WSGI_APPLICATION = "imageconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "imageconsole.context_processors.console",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web processes and workers share the file. A transaction begins IMMEDIATE (it takes the write lock
    # up front and waits for it, where a deferred one that later writes fails at once with "database is
    # locked"); WAL lets readers go on beside the one writer; the busy timeout is how long to wait.
    SQLITE_BUSY_TIMEOUT = int(os.environ.get("SQLITE_BUSY_TIMEOUT", "30"))
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": SQLITE_BUSY_TIMEOUT,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;"
                f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT * 1000}"
            ),
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# The image list's covering index (Index(include=...)) serves PostgreSQL; SQLite builds it without the
# extra column, as expected, so its warning (models.W040) is silenced there only.
SILENCED_SYSTEM_CHECKS = ["models.W040"] if DATABASES["default"]["ENGINE"].endswith("sqlite3") else []

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "imageconsole" / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
# imageconsole/formats/<language>/formats.py: the console's one date format, in every language.
FORMAT_MODULE_PATH = ["imageconsole.formats"]
# Excel's number format for the same dates (images.exports).
EXCEL_DATETIME_FORMAT = "yyyy-mm-dd hh:mm"
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
NODE_MODULES = BASE_DIR / "node_modules"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", NODE_MODULES / "bootstrap" / "dist"),
    ("vendor/htmx", NODE_MODULES / "htmx.org" / "dist"),
    ("vendor/tus", NODE_MODULES / "tus-js-client" / "dist"),
]

# Image bytes: the default standalone storage of `make run`, and staging for uploads and conversions.
STORAGE_ROOT = Path(os.environ.get("STORAGE_ROOT", VAR_DIR / "storage")).resolve()
STAGING_ROOT = Path(os.environ.get("STAGING_ROOT", VAR_DIR / "staging")).resolve()
STAGING_EXPIRY_HOURS = int(os.environ.get("STAGING_EXPIRY_HOURS", "24"))
# Data cleanup leaves unreferenced chunks and objects younger than this, so writes in flight are safe.
STORAGE_CLEANUP_GRACE_HOURS = float(os.environ.get("STORAGE_CLEANUP_GRACE_HOURS", "6"))

# URL imports (images.fetch). Loopback, private, link-local, multicast and reserved addresses are refused
# unless they are in IMPORT_ALLOWED_NETWORKS (CIDRs: an internal mirror). Ports: list, ranges, or "*".
IMPORT_ALLOWED_SCHEMES = env_list("IMPORT_ALLOWED_SCHEMES", "http,https,ftp,sftp,file")
IMPORT_ALLOWED_PORTS = env_list("IMPORT_ALLOWED_PORTS", "21,22,80,443,8000,8080,8443")
IMPORT_ALLOWED_NETWORKS = env_list("IMPORT_ALLOWED_NETWORKS")
IMPORT_FILE_ROOTS = env_list("IMPORT_FILE_ROOTS")  # file:// imports (administrators only) under these
IMPORT_CONNECT_TIMEOUT = float(os.environ.get("IMPORT_CONNECT_TIMEOUT", "15"))
IMPORT_STALL_TIMEOUT = float(os.environ.get("IMPORT_STALL_TIMEOUT", "60"))
IMPORT_FETCH_RETRIES = int(os.environ.get("IMPORT_FETCH_RETRIES", "5"))
IMPORT_RETRY_DELAY = float(os.environ.get("IMPORT_RETRY_DELAY", "2"))
# Compressed imports (gzip, xz, zstd, bzip2): a stream that expands more than this many times once past
# 64 MiB is refused as a decompression bomb (0: no limit; the target size and quota apply regardless).
IMPORT_DECOMPRESS_MAX_RATIO = float(os.environ.get("IMPORT_DECOMPRESS_MAX_RATIO", "1000"))
# CA certificates for https mirrors signed by a private authority (default: the system's store).
IMPORT_CA_BUNDLE = os.environ.get("IMPORT_CA_BUNDLE", "")
# The private key sftp://user@host/... URLs log in with; when KNOWN_HOSTS is set, unknown host keys are refused.
IMPORT_SFTP_KEY_FILE = os.environ.get("IMPORT_SFTP_KEY_FILE", "")
IMPORT_SFTP_KEY_PASSPHRASE = os.environ.get("IMPORT_SFTP_KEY_PASSPHRASE", "")
IMPORT_SFTP_KNOWN_HOSTS = os.environ.get("IMPORT_SFTP_KNOWN_HOSTS", "")
# The import pipeline (images/conf.py): limits of qemu-img on untrusted files, upload expiry, job heartbeat.
IMPORT_QEMU_IMG_ADDRESS_SPACE = int(os.environ.get("IMPORT_QEMU_IMG_ADDRESS_SPACE", str(1024**3)))
IMPORT_QEMU_IMG_CPU_SECONDS = int(os.environ.get("IMPORT_QEMU_IMG_CPU_SECONDS", "30"))
IMPORT_QEMU_IMG_CHECK_CPU_SECONDS = int(os.environ.get("IMPORT_QEMU_IMG_CHECK_CPU_SECONDS", "600"))
IMPORT_CONVERT_ADDRESS_SPACE = int(os.environ.get("IMPORT_CONVERT_ADDRESS_SPACE", str(2 * 1024**3)))
IMPORT_UPLOAD_EXPIRY_HOURS = float(os.environ.get("IMPORT_UPLOAD_EXPIRY_HOURS", str(STAGING_EXPIRY_HOURS)))
# The browser's upload sends its file in tus PATCHes of this many MiB (under a proxy's body limit, e.g.
# nginx's client_max_body_size 64m); 0: the whole file in one PATCH.
IMPORT_UPLOAD_CHUNK_MB = int(os.environ.get("IMPORT_UPLOAD_CHUNK_MB", "32"))
IMPORT_HEARTBEAT_SECONDS = int(os.environ.get("IMPORT_HEARTBEAT_SECONDS", "30"))

# Redis and RQ. `make run` starts a private redis-server and sets REDIS_URL when it is unset.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_DEFAULT_TIMEOUT = int(os.environ.get("RQ_DEFAULT_TIMEOUT", "3600"))
# Compute: seconds a VM has to power off after an ACPI shutdown before Stop forces it off.
COMPUTE_STOP_TIMEOUT = int(os.environ.get("COMPUTE_STOP_TIMEOUT", "60"))
# Compute: seconds a VM has to restart after an ACPI reboot before Reboot resets it.
COMPUTE_REBOOT_TIMEOUT = int(os.environ.get("COMPUTE_REBOOT_TIMEOUT", "60"))
# Compute: seconds a boot check watches an image boot.
COMPUTE_BOOT_CHECK_SECONDS = int(os.environ.get("COMPUTE_BOOT_CHECK_SECONDS", "60"))
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": timeout}
    for name, timeout in {
        "imports": 6 * 3600,
        "convert": 6 * 3600,
        "default": RQ_DEFAULT_TIMEOUT,
        "maintenance": RQ_DEFAULT_TIMEOUT,
    }.items()
}
RQ_SHOW_ADMIN_LINK = True

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Behind TLS (production), cookies travel only over HTTPS.
SECURE_COOKIES = env_bool("SECURE_COOKIES", not DEBUG)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
LANGUAGE_COOKIE_SECURE = SECURE_COOKIES
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None


def _trusted_proxies(value: str, behind_proxy: bool) -> int | list[str]:
    """TRUSTED_PROXIES: how many proxies append to X-Forwarded-For (a number), or their addresses or
    networks (a comma-separated list). Default: one proxy when BEHIND_TLS_PROXY is set, else none."""
    value = value.strip()
    if not value:
        return 1 if behind_proxy else 0
    if value.isdigit():
        return int(value)
    import ipaddress

    from django.core.exceptions import ImproperlyConfigured

    entries = [entry.strip() for entry in value.split(",") if entry.strip()]
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {entry!r} is neither a count nor an address or network like 10.0.0.0/8"
            ) from None
    return entries


# The client address for the operation log and login throttling (imageconsole/core/http.py).
TRUSTED_PROXIES = _trusted_proxies(os.environ.get("TRUSTED_PROXIES", ""), env_bool("BEHIND_TLS_PROXY"))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Login throttling (django-axes): lock a username from one address after repeated failures.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Behind a proxy, lock-outs are keyed on the client's address, not the proxy's.
AXES_CLIENT_IP_CALLABLE = "imageconsole.core.http.client_ip"

# The OpenStack Identity v3 endpoint's tokens (openstack app): lifetime in seconds (Keystone's default).
OPENSTACK_TOKEN_SECONDS = int(os.environ.get("OPENSTACK_TOKEN_SECONDS", "3600"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "imageconsole.core.api.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "imageconsole API",
    "DESCRIPTION": "Images, imports, storages, project groups and the operation log of one tenant.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files (drf-spectacular-sidecar): the CSP allows no other origin.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # Choice sets that share a field name across models get names of their own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "ImageKindEnum": "images.models.Image.Kind",
        "StorageKindEnum": "storage.models.ImageStorage.Kind",
        "DiskFormatEnum": "images.models.Image.DiskFormat",
        "ImageSourceEnum": "images.models.Image.Source",
        "ImportSourceEnum": ["upload", "url"],
    },
}

# Key for secrets kept at rest (storage credentials, passwords in import URLs); derived from
# SECRET_KEY unless given, so rotating SECRET_KEY without setting this makes stored secrets unreadable.
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    # One INFO line per RQ job at most (imageconsole.logfilters); warnings and errors always.
    "filters": {
        "forbidden_one_line": {"()": "imageconsole.core.logs.PermissionDeniedOneLine"},
        "one_line_per_job": {"()": "imageconsole.logfilters.OneLinePerJob"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["one_line_per_job"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["forbidden_one_line"]},
        # One INFO line per SSH login to a storage server or sftp import source would drown the job lines.
        "paramiko": {"level": "WARNING"},
    },
}

# django-rq: enqueue jobs only once the surrounding transaction commits; `manage.py rqworker` runs
# imageconsole.worker.Worker (rq's, with the jobs' modules imported before it forks a horse per job).
RQ = {"COMMIT_MODE": "on_db_commit", "WORKER_CLASS": "imageconsole.worker.Worker"}
