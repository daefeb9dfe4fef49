"""The engine: workflows, processes and their runner, on Django and Celery."""

from orchestrator.celery import app as celery_app

__all__ = ["celery_app"]
