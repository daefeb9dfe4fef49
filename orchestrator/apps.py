from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


def _sync_roles(sender, **kwargs) -> None:
    """Sync role groups once per migrate: after the last app, when every permission exists."""
    from django.apps import apps

    if sender.label != list(apps.get_app_configs())[-1].label:
        return
    from orchestrator.roles import sync_role_groups

    sync_role_groups()


class AuditedAdminConfig(admin_apps.AdminConfig):
    """`django.contrib.admin` whose `admin.site` records every edit in the audit trail."""

    default = False  # named in INSTALLED_APPS; `orchestrator` itself is OrchestratorConfig
    default_site = "orchestrator.audit.AuditedAdminSite"


class OrchestratorConfig(AppConfig):
    name = "orchestrator"
    verbose_name = "Engine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Runs after every app's permissions were created (post_migrate order follows
        # INSTALLED_APPS, and permissions come from django.contrib.auth's own handler).
        post_migrate.connect(_sync_roles, dispatch_uid="orchestrator.sync_roles")
        # audit: the login receivers; schedules: the periodic runs' outcome (task_postrun)
        from orchestrator import audit, extensions, registry, schedules  # noqa: F401
        from orchestrator.flows.children import WakeParentFlows

        extensions.register(WakeParentFlows())
        registry.register_module("orchestrator.builtin_workflows")  # always, whatever the setting
        registry.load_workflow_modules()
