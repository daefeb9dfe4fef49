from django.apps import AppConfig


class BlueprintsConfig(AppConfig):
    name = "blueprints"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from blueprints.extension import BlueprintExtension
        from blueprints.workflows import WORKFLOWS
        from orchestrator import registry
        from orchestrator.extensions import register

        register(BlueprintExtension())
        for definition in WORKFLOWS:  # always present, whatever the workflow modules say
            registry.register(definition)
