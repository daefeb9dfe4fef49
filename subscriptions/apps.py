from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orchestrator import registry
        from orchestrator.extensions import register
        from subscriptions import checks, signals  # noqa: F401 - registers checks and handlers
        from subscriptions.extension import SubscriptionExtension

        register(SubscriptionExtension())
        # modify_note and task_validate_products: always there, whatever the setting says.
        registry.register_module("subscriptions.workflows")
