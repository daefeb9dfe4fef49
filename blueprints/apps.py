from django.apps import AppConfig


class BlueprintsConfig(AppConfig):
    name = "blueprints"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from blueprints.extension import BlueprintExtension
        from orchestrator import registry
        from orchestrator.extensions import register

        register(BlueprintExtension())
        registry.register_module("blueprints.workflows")  # always, whatever the setting
