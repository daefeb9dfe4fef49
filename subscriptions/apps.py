from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orchestrator.extensions import register
        from subscriptions import checks  # noqa: F401 - registers the system checks
        from subscriptions.extension import SubscriptionExtension

        register(SubscriptionExtension())
