"""The engine in the Django admin: read-only records, and actions that call the services.

Workflow rows mirror the code registry (`migrate_workflows` writes them), processes and
their step log are an audit trail: nothing here edits them directly. The actions call the
same service functions as the pages and the API, one object at a time, and report each
object's refusal instead of failing the whole request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from orchestrator import services
from orchestrator.exceptions import OrchestratorError
from orchestrator.models import (
    ApiToken,
    AuditEvent,
    EngineSettings,
    Process,
    ProcessStep,
    Workflow,
)
from orchestrator.permissions import user_may

logger = logging.getLogger(__name__)

# Never shown anywhere: encrypted secrets, the callback token digest and the lease.
HIDDEN_PROCESS_FIELDS = ("secrets", "callback_token", "lease_owner", "lease_expires_at")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written elsewhere, only looked at here: no add, change or delete."""

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Workflow)
class WorkflowAdmin(ReadOnlyAdmin):
    """Rows come from the code registry (manage.py migrate_workflows)."""

    list_display = ("name", "type", "target", "is_task", "cron", "concurrency_limit")
    list_filter = ("type", "target", "is_task")
    search_fields = ("name", "description")


class ProcessStepInline(admin.TabularInline):
    model = ProcessStep
    fields = ("name", "status", "created_by", "started_at", "completed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def run_per_object(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    verb: str,
    action: Callable[[Process], object],
) -> None:
    """Apply one service action to each selected process; report successes and refusals."""
    done = 0
    for process in queryset.select_related("workflow"):
        try:
            action(process)
        except (OrchestratorError, PermissionDenied) as error:
            message = getattr(error, "message", None) or str(error) or "not allowed"
            modeladmin.message_user(
                request, f"{process.workflow.name} {process.pk}: {message}", messages.ERROR
            )
        except Exception as error:  # noqa: BLE001 - one object's failure must not end the rest
            logger.exception("admin action %s failed for %s", verb, process.pk)
            modeladmin.message_user(
                request,
                f"{process.workflow.name} {process.pk}: unexpected error: {error}",
                messages.ERROR,
            )
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb} {done} process(es).", messages.SUCCESS)


@admin.register(Process)
class ProcessAdmin(admin.ModelAdmin):
    list_display = ("id", "workflow", "status", "started_at", "is_task", "run_name")
    list_filter = ("status", "workflow", "is_task")
    search_fields = ("id", "run_name", "workflow__name")
    list_select_related = ("workflow",)
    date_hierarchy = "started_at"
    exclude = HIDDEN_PROCESS_FIELDS
    inlines = [ProcessStepInline]
    actions = ["resume_selected", "abort_selected", "delete_task_runs"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name not in HIDDEN_PROCESS_FIELDS]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting goes through the service's rules
        return actions

    def has_add_permission(self, request):
        return False  # processes are started by the services (pages, API, schedules)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # only task runs may go, through the "Delete task runs" action

    def has_resume_permission(self, request):
        return user_may(request.user, "orchestrator.resume_process")

    def has_abort_permission(self, request):
        return user_may(request.user, "orchestrator.abort_process")

    def has_delete_task_runs_permission(self, request):
        return user_may(request.user, "orchestrator.delete_process")

    @admin.action(description="Resume/retry the selected processes", permissions=["resume"])
    def resume_selected(self, request, queryset):
        run_per_object(
            self, request, queryset, "Resumed",
            lambda process: services.resume_process(process=process, user=request.user),
        )

    @admin.action(description="Abort the selected processes", permissions=["abort"])
    def abort_selected(self, request, queryset):
        run_per_object(
            self, request, queryset, "Aborted",
            lambda process: services.abort_process(process=process, user=request.user),
        )

    @admin.action(description="Delete the selected task runs", permissions=["delete_task_runs"])
    def delete_task_runs(self, request, queryset):
        run_per_object(
            self, request, queryset, "Deleted",
            lambda process: services.delete_process(process=process, user=request.user),
        )


@admin.register(EngineSettings)
class EngineSettingsAdmin(admin.ModelAdmin):
    """The engine switch; saving goes through `set_engine_paused` so unpausing resumes runs."""

    list_display = ("__str__", "paused", "changed_by", "changed_at")
    fields = ("paused", "changed_by", "changed_at")
    readonly_fields = ("changed_by", "changed_at")
    actions = ["pause_engine", "unpause_engine"]

    def has_add_permission(self, request):
        may = user_may(request.user, "orchestrator.pause_engine")
        return may and not EngineSettings.objects.exists()

    def has_change_permission(self, request, obj=None):
        return user_may(request.user, "orchestrator.pause_engine")

    def has_delete_permission(self, request, obj=None):
        return False

    def has_pause_permission(self, request):
        return user_may(request.user, "orchestrator.pause_engine")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def save_model(self, request, obj, form, change):
        engine = services.set_engine_paused(paused=obj.paused, user=request.user)
        obj.pk, obj.changed_by, obj.changed_at = engine.pk, engine.changed_by, engine.changed_at

    def set_paused(self, request, paused: bool) -> None:
        try:
            services.set_engine_paused(paused=paused, user=request.user)
        except (OrchestratorError, PermissionDenied) as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, "Engine paused." if paused else "Engine running.")

    @admin.action(description="Pause the engine", permissions=["pause"])
    def pause_engine(self, request, queryset):
        self.set_paused(request, True)

    @admin.action(description="Unpause the engine", permissions=["pause"])
    def unpause_engine(self, request, queryset):
        self.set_paused(request, False)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """The audit trail (the page at /audit/ and /api/audit/ show it too)."""

    list_display = ("at", "actor_name", "action", "object_type", "object_repr", "via",
                    "client_address")
    list_filter = ("action", "via", "object_type")
    search_fields = ("actor_name", "action", "object_id", "object_repr")
    date_hierarchy = "at"


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: who has one, since when, last used; deleting one revokes it. Tokens are
    issued by `POST /api/auth/token/` only, and only their digests exist here."""

    list_display = ("prefix", "user", "created_at", "last_used_at")
    list_filter = ("created_at", "last_used_at")
    search_fields = ("user__username", "prefix")
    fields = ("user", "prefix", "created_at", "last_used_at")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
