"""Templates, blueprints, executions, integrations, secrets and storage in the Django admin.

Every form here validates with the services' own checks (`services.check` runs the save and
rolls it back) and saves through them, so the admin refuses exactly what the API refuses,
naming the same field and rule. Executions are records of runs: the admin executes, tears
down and deletes them through their services, one at a time, reporting each refusal.
Secret values and credentials are write-only: a blank field keeps the stored one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from blueprints import selectors, services
from blueprints.models import (
    Blueprint,
    Execution,
    ExecutionStep,
    Integration,
    Secret,
    StorageBackend,
    Template,
)
from orchestrator.exceptions import OrchestratorError
from orchestrator.forms import VisibleModelChoiceField, VisibleModelMultipleChoiceField, bind_user
from orchestrator.models import Workflow
from orchestrator.permissions import user_may
from subscriptions.models import Product

logger = logging.getLogger(__name__)


def add_errors(form: forms.BaseForm, error: OrchestratorError) -> None:
    """A service's refusal on the form: on the fields it names, else on the whole form."""
    placed = False
    for field, problems in error.field_errors.items():
        items = problems if isinstance(problems, list) else [problems]
        if field in form.fields:
            for problem in items:
                form.add_error(field, str(problem))
            placed = True
    if not placed:
        form.add_error(None, error.message)


class ServiceForm(forms.ModelForm):
    """A model form whose rules are a save service's (`save`, the object as `instance_name`)."""

    save_service: Callable[..., Any]
    instance_name: str
    user = None

    def service_data(self) -> dict[str, Any]:
        raise NotImplementedError

    def service_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"user": self.user, "data": self.service_data()}
        if self.instance.pk:
            kwargs[self.instance_name] = type(self.instance).objects.get(pk=self.instance.pk)
        return kwargs

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.errors:
            try:
                check = getattr(type(self), "check_service", None)
                if check is not None:  # the save's own checks, writing nothing
                    check(**self.service_kwargs())
                else:
                    services.check(type(self).save_service, **self.service_kwargs())
            except OrchestratorError as error:
                add_errors(self, error)
            except PermissionDenied as error:
                self.add_error(None, str(error))
        return cleaned


class ServiceAdmin(admin.ModelAdmin):
    """Forms bound to the requesting user (choices among what they may view), saved and
    deleted through the services."""

    delete_service: Callable[..., None]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        user = request.user

        class BoundForm(form_class):
            def __init__(self, *args, **inner):
                super().__init__(*args, **inner)
                self.user = user
                bind_user(self, user)

        return BoundForm

    def save_model(self, request, obj, form, change):
        saved = type(form).save_service(**form.service_kwargs())
        obj.pk = saved.pk

    def save_related(self, request, form, formsets, change):
        """The service wrote the relations already."""

    def delete_model(self, request, obj):
        type(self).delete_service(user=request.user, **{self.form.instance_name: obj})

    def delete_queryset(self, request, queryset):
        run_per_object(self, request, queryset, "Deleted", lambda obj: type(self).delete_service(
            user=request.user, **{self.form.instance_name: obj}))


def run_per_object(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet,
                   verb: str, action: Callable[[Any], object]) -> None:
    """Apply one service action to each selected object; report successes and refusals."""
    done = 0
    for obj in queryset:
        try:
            action(obj)
        except (OrchestratorError, PermissionDenied) as error:
            message = getattr(error, "message", None) or str(error) or "not allowed"
            modeladmin.message_user(request, f"{obj}: {message}", messages.ERROR)
        except Exception as error:  # noqa: BLE001 - one object's failure must not end the rest
            logger.exception("admin action %s failed for %s", verb, obj)
            modeladmin.message_user(request, f"{obj}: unexpected error: {error}", messages.ERROR)
        else:
            done += 1
    if done:
        modeladmin.message_user(request, f"{verb} {done}.", messages.SUCCESS)


# --- templates and blueprints ----------------------------------------------------------


class TemplateForm(ServiceForm):
    save_service = staticmethod(services.save_template)
    instance_name = "template"
    workflow = forms.ModelChoiceField(
        Workflow.objects.filter(target__in=("create", "system"), removed_at__isnull=True),
        to_field_name="name", help_text="A create workflow or a task.",
    )
    product = VisibleModelChoiceField(Product.objects.all(), required=False)
    variables = forms.JSONField(required=False, initial=list, help_text=(
        'A list of {"name", "default", "required", "secret", "type", "description"}.'))
    outputs = forms.JSONField(required=False, initial=list,
                              help_text='Keys, or {"name": key, "type": type}.')
    source_code_versions = forms.JSONField(required=False, initial=list)

    class Meta:
        model = Template
        fields = ["name", "description", "workflow", "product", "variables", "outputs",
                  "source_code_versions"]

    def service_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data.get("name"), "description": data.get("description", ""),
            "workflow": data["workflow"].name if data.get("workflow") else "",
            "product": data["product"].pk if data.get("product") else None,
            "variables": data.get("variables") or [], "outputs": data.get("outputs") or [],
            "source_code_versions": data.get("source_code_versions") or [],
        }


@admin.register(Template)
class TemplateAdmin(ServiceAdmin):
    form = TemplateForm
    delete_service = staticmethod(services.delete_template)
    list_display = ("name", "workflow", "product", "updated_at")
    list_select_related = ("workflow", "product")
    search_fields = ("name", "description")

    def get_queryset(self, request):
        return selectors.templates_for_user(request.user)


class BlueprintForm(ServiceForm):
    save_service = staticmethod(services.save_blueprint)
    check_service = staticmethod(services.validate_blueprint)
    instance_name = "blueprint"
    members = VisibleModelMultipleChoiceField(
        Template.objects.order_by("name"), label="Templates", required=False,
        widget=admin.widgets.FilteredSelectMultiple("templates", is_stacked=False),
    )
    default_variables = forms.JSONField(required=False, initial=dict, help_text=(
        "{template name: {variable: value}}"))
    wiring = forms.JSONField(required=False, initial=list, help_text=(
        'A list of {"source_template", "source_output", "target_template", '
        '"target_variable"}, templates by name.'))

    class Meta:
        model = Blueprint
        fields = ["name", "description", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            data = services.blueprint_data(self.instance, by_name=True)
            self.initial.update(
                members=list(self.instance.members.values_list("template_id", flat=True)),
                default_variables=data["default_variables"], wiring=data["wiring"],
            )

    def service_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "name": data.get("name"), "description": data.get("description", ""),
            "enabled": data.get("enabled", True),
            "templates": [template.name for template in data.get("members") or []],
            "default_variables": data.get("default_variables") or {},
            "wiring": data.get("wiring") or [],
        }


@admin.register(Blueprint)
class BlueprintAdmin(ServiceAdmin):
    form = BlueprintForm
    delete_service = staticmethod(services.delete_blueprint)
    list_display = ("name", "enabled", "updated_at")
    list_filter = ("enabled",)
    search_fields = ("name", "description")

    def get_queryset(self, request):
        return selectors.blueprints_for_user(request.user)


# --- executions ----------------------------------------------------------------------------


class ExecutionStepInline(admin.TabularInline):
    model = ExecutionStep
    fields = ("template", "position", "status", "error_message", "resource", "process",
              "started_at", "completed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    """Records of runs: nothing is edited here; execute, tear down and delete go through
    the services, one execution at a time."""

    list_display = ("id", "blueprint", "status", "teardown_status", "created_by", "created_at")
    list_filter = ("status", "teardown_status", "blueprint")
    list_select_related = ("blueprint", "created_by")
    search_fields = ("id", "blueprint__name")
    date_hierarchy = "created_at"
    exclude = ("secret_overrides",)
    inlines = [ExecutionStepInline]
    actions = ["execute_selected", "teardown_selected", "delete_selected_executions"]

    def get_queryset(self, request):
        return selectors.executions_for_user(request.user)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields if f.name != "secret_overrides"] + [
            "integrations", "secrets"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deleting goes through the service's rules
        return actions

    def has_add_permission(self, request):
        return False  # created from a blueprint (its page or the API)

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the "Delete" action, through the service

    def has_execute_permission(self, request):
        return user_may(request.user, "blueprints.execute_execution")

    def has_teardown_permission(self, request):
        return user_may(request.user, "blueprints.teardown_execution")

    def has_remove_permission(self, request):
        return user_may(request.user, "blueprints.delete_execution")

    @admin.action(description="Execute the selected executions", permissions=["execute"])
    def execute_selected(self, request, queryset):
        run_per_object(self, request, queryset, "Executed", lambda execution:
                       services.execute_execution(execution=execution, user=request.user))

    @admin.action(description="Tear down the resources of the selected executions",
                  permissions=["teardown"])
    def teardown_selected(self, request, queryset):
        run_per_object(self, request, queryset, "Tearing down", lambda execution:
                       services.teardown_execution(execution=execution, user=request.user))

    @admin.action(description="Delete the selected executions (their records)",
                  permissions=["remove"])
    def delete_selected_executions(self, request, queryset):
        run_per_object(self, request, queryset, "Deleted", lambda execution:
                       services.delete_execution(execution=execution, user=request.user))


# --- integrations, secrets, storage -------------------------------------------------------


class SecretForm(ServiceForm):
    save_service = staticmethod(services.save_secret)
    instance_name = "secret"
    value = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False),
                            help_text="Write-only; leave blank to keep the stored value.")

    class Meta:
        model = Secret
        fields = ["name", "description"]

    def service_data(self) -> dict[str, Any]:
        data = {"name": self.cleaned_data.get("name"),
                "description": self.cleaned_data.get("description", "")}
        if self.cleaned_data.get("value") or not self.instance.pk:
            data["value"] = self.cleaned_data.get("value", "")
        return data


@admin.register(Secret)
class SecretAdmin(ServiceAdmin):
    form = SecretForm
    delete_service = staticmethod(services.delete_secret)
    list_display = ("name", "description", "updated_at")
    search_fields = ("name",)

    def get_queryset(self, request):
        return selectors.secrets_for_user(request.user)


class IntegrationForm(ServiceForm):
    save_service = staticmethod(services.save_integration)
    instance_name = "integration"
    settings = forms.JSONField(required=False, initial=dict)
    credentials = forms.JSONField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Write-only JSON object of strings; leave blank to keep the stored ones.",
    )

    class Meta:
        model = Integration
        fields = ["name", "description", "kind", "settings"]

    def service_data(self) -> dict[str, Any]:
        data = {key: self.cleaned_data.get(key) for key in ("name", "description", "kind")}
        data["settings"] = self.cleaned_data.get("settings") or {}
        if self.cleaned_data.get("credentials") or not self.instance.pk:
            data["credentials"] = self.cleaned_data.get("credentials") or {}
        return data


@admin.register(Integration)
class IntegrationAdmin(ServiceAdmin):
    form = IntegrationForm
    delete_service = staticmethod(services.delete_integration)
    list_display = ("name", "kind", "updated_at")
    list_filter = ("kind",)
    search_fields = ("name",)

    def get_queryset(self, request):
        return selectors.integrations_for_user(request.user)


class StorageBackendForm(ServiceForm):
    save_service = staticmethod(services.save_storage)
    instance_name = "storage"
    settings = forms.JSONField(required=False, initial=dict)
    integration = VisibleModelChoiceField(Integration.objects.all(), required=False)

    class Meta:
        model = StorageBackend
        fields = ["name", "description", "kind", "settings", "integration"]

    def service_data(self) -> dict[str, Any]:
        data = {key: self.cleaned_data.get(key) for key in ("name", "description", "kind")}
        data["settings"] = self.cleaned_data.get("settings") or {}
        integration = self.cleaned_data.get("integration")
        data["integration"] = integration.pk if integration else None
        return data


@admin.register(StorageBackend)
class StorageBackendAdmin(ServiceAdmin):
    form = StorageBackendForm
    delete_service = staticmethod(services.delete_storage)
    list_display = ("name", "kind", "integration")
    list_filter = ("kind",)

    def get_queryset(self, request):
        return selectors.storages_for_user(request.user)
