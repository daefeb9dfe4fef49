"""The Celery application: durable settings come from Django's settings (CELERY_*)."""

import os
import sys

from celery import Celery
from celery.signals import after_setup_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")


def _load_settings() -> None:
    from django.conf import settings

    from orchestrator.config import ConfigError

    try:
        settings.CELERY_BROKER_URL  # noqa: B018 - forces the settings module to load
    except ConfigError as error:
        sys.exit(f"configuration error: {error}")


if "celery" in os.path.basename(os.path.dirname(sys.argv[0]) + os.path.basename(sys.argv[0])):
    # Only for the `celery` command: Django processes report ConfigError through manage.py.
    _load_settings()
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add("orchestrator.heartbeat:WorkerHeartbeatStep")


@after_setup_logger.connect
def _keep_run_log_level(logger, loglevel=None, **kwargs) -> None:
    from orchestrator.runlog import keep_run_log_level

    keep_run_log_level(logger, loglevel)
