from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orchestrator.extensions import register
        from subscriptions import checks, signals  # noqa: F401 - registers checks and handlers
        from subscriptions.extension import SubscriptionExtension

        register(SubscriptionExtension())
