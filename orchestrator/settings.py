"""Django settings, read from the environment only (DESIGN §2).

Embedded defaults: an SQLite file and kombu's `filesystem://` broker under `var/`.
Production: set `DATABASE_URL`, `CELERY_BROKER_URL`, `SECRET_KEY`, `ALLOWED_HOSTS`.
"""

from __future__ import annotations

import datetime
import logging
import os

from kombu import Queue

from orchestrator.config import (
    BASE_DIR,
    VAR_DIR,
    broker_url,
    database_settings,
    encryption_keys,
    env_bool,
    env_choice,
    env_int,
    env_list,
    filesystem_broker_options,
    log_level,
    proxy_ssl_header,
    secret_key,
)

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = secret_key(DEBUG)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = False

INSTALLED_APPS = [
    "orchestrator.apps.AuditedAdminConfig",  # django.contrib.admin, recording every edit
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "django_celery_beat",
    "orchestrator",
    "subscriptions",
    "blueprints",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "orchestrator.audit.AuditContextMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "orchestrator.middleware.RefuseUnreadableRequests",
    "orchestrator.middleware.LoginRequiredMiddleware",
    "orchestrator.middleware.SecurityHeaders",
    # Turns a locked-out login (page, admin) into the 429 page; innermost, so the headers
    # above apply to that page too.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"

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
                "orchestrator.context_processors.engine_status",
            ],
        },
    },
]

# A worker reuses its connection from task to task (a new PostgreSQL session per task cost
# more than the steps of a short run); DATABASE_CONN_MAX_AGE=0 closes it after each one.
DATABASES = {"default": database_settings(
    os.environ.get("DATABASE_URL"),
    conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses every login of a locked-out account or client address (django-axes).
    "orchestrator.auth.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user object; anonymous sees nothing

# Login throttling (django-axes, docs/access.md): after LOGIN_FAILURE_LIMIT failed logins in
# a row for one account, or from one client address, every login of that account (or from
# that address) is refused for LOGIN_LOCKOUT_MINUTES, on the login page, the admin login and
# POST /api/auth/token/ alike. Failures are rows in the database (shared by every web process).
AXES_ENABLED = env_bool("LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each counted on its own
AXES_RESET_ON_SUCCESS = True  # a successful login clears that account's and address's failures
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # a lockout ends when it said it would
AXES_LOCKOUT_CALLABLE = "orchestrator.auth.lockout_page"
# The client address the audit trail records (ORCHESTRATOR_PROXY_COUNT behind proxies).
AXES_CLIENT_IP_CALLABLE = "orchestrator.audit.client_address"
AXES_VERBOSE = False

SESSION_COOKIE_HTTPONLY = True
# HTTPS (docs/deploying.md): ORCHESTRATOR_HTTPS=true when users reach the site over HTTPS only.
# It switches on the redirect to HTTPS, HSTS and secure cookies (each can be set on its own),
# so that `manage.py check --deploy` is clean. Behind a proxy that terminates TLS, name the
# header it sets to `https` in SECURE_PROXY_SSL_HEADER, or the redirect never ends.
ORCHESTRATOR_HTTPS = env_bool("ORCHESTRATOR_HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", ORCHESTRATOR_HTTPS)
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(os.environ.get("SECURE_PROXY_SSL_HEADER"))
SECURE_HSTS_SECONDS = env_int(
    "SECURE_HSTS_SECONDS", 365 * 24 * 3600 if ORCHESTRATOR_HTTPS else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", ORCHESTRATOR_HTTPS)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", ORCHESTRATOR_HTTPS)
CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", ORCHESTRATOR_HTTPS)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", ORCHESTRATOR_HTTPS)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Sent with every page and API answer (orchestrator.middleware.SecurityHeaders): only the
# project's own scripts, styles and images; no inline script anywhere.
ORCHESTRATOR_CONTENT_SECURITY_POLICY = os.environ.get(
    "ORCHESTRATOR_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)
# Third-party UIs with inline styles in their templates: styles (not scripts) may be inline.
ORCHESTRATOR_CSP_INLINE_STYLE_PATHS = env_list(
    "ORCHESTRATOR_CSP_INLINE_STYLE_PATHS", ["/admin/", "/api/"]
)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve straight from the app folders, no collectstatic needed

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "orchestrator.tokens.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["orchestrator.filters.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "orchestrator.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Infrastructure Orchestrator API",
    "DESCRIPTION": "Workflows, processes, subscriptions and blueprints.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # Every operation documents the answers shared machinery gives it (400, 401, 404, 413, 415)
    # and that an empty query parameter is as if not given (orchestrator/api/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "orchestrator.api.schema.document_shared_errors",
    ],
    # Several models have a `status` with its own choices: name each enum after its model.
    "ENUM_NAME_OVERRIDES": {
        "ProcessStatusEnum": "orchestrator.models.ProcessStatus",
        "SubscriptionLifecycleEnum": "subscriptions.models.SubscriptionLifecycle",
        "ProductStatusEnum": "subscriptions.models.ProductStatus",
        "ExecutionStatusEnum": "blueprints.models.ExecutionStatus",  # steps share it
        "TeardownStatusEnum": "blueprints.models.TeardownStatus",
        "VariableTypeEnum": "blueprints.models.VariableType",
        "WorkflowTypeEnum": "orchestrator.models.WorkflowType",
    },
}

# --- Celery (DESIGN §4.3): durable delivery, JSON only, one queue per workflow type -----
CELERY_BROKER_URL = broker_url(os.environ.get("CELERY_BROKER_URL"))
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options()
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# A web request that cannot publish gives up fast: the run is stored and the sweep sends it.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_TASK_DEFAULT_QUEUE = "core"
CELERY_TASK_QUEUES = [
    Queue(name, routing_key=name) for name in ("core", "user", "internal")
]
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat writes a periodic task's last run and run count after every task it sends (its
# default, every 3 minutes, left the schedules page saying "never" for the 30 s sweep).
CELERY_BEAT_SYNC_EVERY = 1
# No result backend, so no `celery.backend_cleanup` entry for beat to add to the schedules.
CELERY_RESULT_EXPIRES = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_MAX_RETRIES = env_int("CELERY_BROKER_CONNECTION_MAX_RETRIES", 3)

# --- The engine -------------------------------------------------------------------------
# The user's workflow modules (the built-in workflows are always registered by their apps);
# by default the demo tasks and the demo catalogue.
ORCHESTRATOR_WORKFLOW_MODULES = env_list(
    "ORCHESTRATOR_WORKFLOW_MODULES",
    ["orchestrator.demo_workflows", "subscriptions.demo_workflows", "blueprints.demo_workflows"],
)
# A lease outlives a stalled worker by this long before the sweep takes the run back.
ORCHESTRATOR_LEASE_SECONDS = env_int("ORCHESTRATOR_LEASE_SECONDS", 60)
# A step running longer fails ("exceeded its time limit") and frees its worker; a step may
# set its own (`@step("Name", time_limit=...)`). Long external jobs belong in callback steps.
ORCHESTRATOR_STEP_TIME_LIMIT_SECONDS = env_int(
    "ORCHESTRATOR_STEP_TIME_LIMIT_SECONDS", 3600, minimum=1
)
ORCHESTRATOR_SWEEP_INTERVAL_SECONDS = env_int("ORCHESTRATOR_SWEEP_INTERVAL_SECONDS", 30)
ORCHESTRATOR_RETRY_MAX_ATTEMPTS = env_int("ORCHESTRATOR_RETRY_MAX_ATTEMPTS", 5)
ORCHESTRATOR_RETRY_BASE_SECONDS = env_int("ORCHESTRATOR_RETRY_BASE_SECONDS", 10)
ORCHESTRATOR_RETRY_MAX_SECONDS = env_int("ORCHESTRATOR_RETRY_MAX_SECONDS", 600)
ORCHESTRATOR_TASK_RETENTION_DAYS = env_int("ORCHESTRATOR_TASK_RETENTION_DAYS", 30)
# How long the earlier pages of a multi-page browser form stay usable (they are bound to the
# user and login session that filled them in, too).
# How long an idempotency key (the API's Idempotency-Key header, a browser form's one-time
# key) answers with the run its first use started.
# An API token unused for this many days lapses (0: never); every use renews it.
ORCHESTRATOR_API_TOKEN_IDLE_DAYS = env_int("ORCHESTRATOR_API_TOKEN_IDLE_DAYS", 90, minimum=0)
ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS = env_int("ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS", 24, minimum=1)
ORCHESTRATOR_FORM_PAGES_MAX_AGE_SECONDS = env_int(
    "ORCHESTRATOR_FORM_PAGES_MAX_AGE_SECONDS", 3600, minimum=60
)
# Reverse proxies in front of the web servers that append to X-Forwarded-For: the audit
# trail takes the client address from there (0: the connection's own address).
ORCHESTRATOR_PROXY_COUNT = env_int("ORCHESTRATOR_PROXY_COUNT", 0)
# Keys that encrypt stored secrets (the first encrypts, all decrypt); none: derived from
# SECRET_KEY. See orchestrator/crypto.py and docs/deploying.md (rotation).
ORCHESTRATOR_ENCRYPTION_KEYS = encryption_keys(os.environ.get("ORCHESTRATOR_ENCRYPTION_KEYS"))

# Run logs (orchestrator.runlog): what a run logs at this level or above is kept with its
# process (its page, GET /api/processes/{id}/logs/), at most so many lines of so many characters.
ORCHESTRATOR_RUN_LOG_LEVEL = log_level("ORCHESTRATOR_RUN_LOG_LEVEL", "INFO")
ORCHESTRATOR_RUN_LOG_MAX_LINES = env_int("ORCHESTRATOR_RUN_LOG_MAX_LINES", 2000, minimum=0)
ORCHESTRATOR_RUN_LOG_MAX_CHARS = env_int("ORCHESTRATOR_RUN_LOG_MAX_CHARS", 8000, minimum=100)
LOG_LEVEL = log_level("LOG_LEVEL", "INFO")
# `plain` lines, or `json`: one object per line, for a log collector (orchestrator.runlog).
LOG_FORMAT = env_choice("LOG_FORMAT", ("plain", "json"), "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # A line made while a worker runs a process says which: `process=<id> step=<name>`.
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(run)s%(message)s"},
        "json": {"()": "orchestrator.runlog.JsonFormatter"},
    },
    "filters": {
        # What a run logs (its steps included) is redacted of the run's secrets.
        "redact_secrets": {"()": "orchestrator.redaction.RedactSecretsFilter"},
        "run_context": {"()": "orchestrator.runlog.RunContextFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_secrets", "run_context"],
            "level": LOG_LEVEL,
        },
        "run_log": {"class": "orchestrator.runlog.RunLogHandler"},
    },
    # The root's level lets through what either the console or the run logs want.
    "root": {
        "handlers": ["console", "run_log"],
        "level": min(logging.getLevelName(LOG_LEVEL),
                     logging.getLevelName(ORCHESTRATOR_RUN_LOG_LEVEL)),
    },
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # lockouts are warnings; each attempt is not news
    },
}
# Each worker writes its heartbeat row this often (orchestrator.heartbeat); one not seen for
# three beats is shown as lost.
ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS = env_int(
    "ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS", 10, minimum=1
)
# GET /metrics: scrapers send `Authorization: Bearer <this>` (empty: only logged-in users
# with orchestrator.view_metrics, the admin role); the step histogram covers this window.
ORCHESTRATOR_METRICS_TOKEN = os.environ.get("ORCHESTRATOR_METRICS_TOKEN", "")
ORCHESTRATOR_METRICS_WINDOW_SECONDS = env_int(
    "ORCHESTRATOR_METRICS_WINDOW_SECONDS", 300, minimum=1
)
# A step started this many times without finishing (its worker keeps dying) fails the run.
ORCHESTRATOR_MAX_DELIVERIES = env_int("ORCHESTRATOR_MAX_DELIVERIES", 10)
# Flows: threads per flow run for submitted task runs; how often a flow parked for its child
# runs looks again on its own (a child's end wakes it at once; this is the backstop).
ORCHESTRATOR_FLOW_MAX_WORKERS = env_int("ORCHESTRATOR_FLOW_MAX_WORKERS", 8)
ORCHESTRATOR_CHILD_POLL_SECONDS = env_int("ORCHESTRATOR_CHILD_POLL_SECONDS", 300)
# Runnable processes not picked up within this many seconds are enqueued again by the sweep.
ORCHESTRATOR_REQUEUE_AFTER_SECONDS = env_int("ORCHESTRATOR_REQUEUE_AFTER_SECONDS", 30)
# How long `orchestrator.lock` waits for a named lock before LockTimeout (per lock: timeout=).
ORCHESTRATOR_LOCK_TIMEOUT_SECONDS = env_int("ORCHESTRATOR_LOCK_TIMEOUT_SECONDS", 300)

# --- Subscription usability rules (DESIGN §5) ---------------------------------------------
# Which lifecycles a workflow may run on, by workflow name; unnamed workflows: active only,
# terminate workflows on any lifecycle but terminated.
WF_USABLE_MAP: dict[str, list[str]] = {}
# Workflows (by name, as in orchestrator-core) blocked or not while live subscriptions use the
# subscription; a workflow not named here is blocked when it is a terminate workflow.
WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS: dict[str, bool] = {}
# Workflows (by name) that may run while the subscription is out of sync; tasks always may.
WF_USABLE_WHILE_OUT_OF_SYNC: list[str] = []
# Workflows attached to every product.
DEFAULT_PRODUCT_WORKFLOWS: list[str] = ["modify_note"]
