"""Serializers of the blueprint API (DESIGN §8).

Output serializers only read. Request serializers describe the payloads for the OpenAPI
schema and check their outer shape; the rules (names, types, wiring, permissions on what a
payload names) are the services' one validator, shared with the admin, pages and import.
Secrets never leave: a secret's value and an integration's credentials are write-only, a
secret variable's value shows as `***`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from blueprints import selectors
from blueprints.models import (
    Blueprint,
    Execution,
    ExecutionStep,
    Integration,
    Secret,
    StorageBackend,
    Template,
    VariableType,
)
from blueprints.plan import MASK
from orchestrator.crypto import decrypt_json

ANY_OBJECT = {"type": "object", "additionalProperties": {}}
RESOLVED_SCHEMA = {
    "type": "object",
    "description": 'Each variable: {"value", "source"} with source one of override, wired, '
                   'blueprint_default, template_default (or "" when nothing gives a value); '
                   "wired ones name wired_from and are pending until their step is done; "
                   "secret values show as ***.",
    "additionalProperties": {"type": "object", "properties": {
        "value": {}, "source": {"type": "string"}, "wired_from": {"type": "string"},
        "pending": {"type": "boolean"}, "secret": {"type": "boolean"}}},
}


# --- templates ---------------------------------------------------------------------------


class TemplateVariableSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    default = serializers.JSONField(required=False)
    required = serializers.BooleanField(required=False, default=False)
    secret = serializers.BooleanField(required=False, default=False)
    type = serializers.ChoiceField(
        choices=VariableType.choices, required=False,
        help_text="Defaults to the type of the workflow's form field.",
    )
    description = serializers.CharField(required=False, max_length=1000)

    class Meta:
        ref_name = "TemplateVariable"


class TemplateSerializer(serializers.ModelSerializer):
    workflow = serializers.CharField(source="workflow.name", read_only=True)
    product = serializers.CharField(source="product.name", read_only=True, allow_null=True,
                                    default=None)
    variables = TemplateVariableSerializer(many=True, read_only=True)
    outputs = serializers.SerializerMethodField(help_text="The output keys.")
    output_types = serializers.SerializerMethodField(help_text="{key: type} of the outputs.")

    class Meta:
        model = Template
        fields = ["id", "name", "description", "workflow", "product", "variables", "outputs",
                  "output_types", "source_code_versions", "created_at", "updated_at"]
        read_only_fields = fields
        ref_name = "Template"

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_outputs(self, template: Template) -> list[str]:
        return [name for name, _ in selectors.output_pairs(template.outputs)]

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_output_types(self, template: Template) -> dict[str, str]:
        return dict(selectors.output_pairs(template.outputs))


class TemplateWriteSerializer(serializers.Serializer):
    """A template as sent: the workflow by name, the product by id or name."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    workflow = serializers.CharField(max_length=255)
    product = serializers.CharField(required=False, allow_null=True)
    variables = TemplateVariableSerializer(many=True, required=False)
    outputs = serializers.ListField(child=serializers.JSONField(), required=False,
                                    help_text='Keys, or {"name": key, "type": type}.')
    source_code_versions = serializers.ListField(child=serializers.CharField(), required=False)

    class Meta:
        ref_name = "TemplateRequest"


# --- blueprints --------------------------------------------------------------------------


class WiringRuleSerializer(serializers.Serializer):
    source_template = serializers.JSONField(help_text="Template id or name.")
    source_output = serializers.CharField()
    target_template = serializers.JSONField(help_text="Template id or name.")
    target_variable = serializers.CharField()

    class Meta:
        ref_name = "WiringRule"


class BlueprintSerializer(serializers.ModelSerializer):
    templates = serializers.SerializerMethodField(help_text="Template ids, in order.")
    default_variables = serializers.SerializerMethodField(
        help_text="{template id: {variable: value}}"
    )
    wiring = serializers.SerializerMethodField()

    class Meta:
        model = Blueprint
        fields = ["id", "name", "description", "enabled", "templates", "default_variables",
                  "wiring", "created_at", "updated_at"]
        read_only_fields = fields
        ref_name = "Blueprint"

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_templates(self, blueprint: Blueprint) -> list[int]:
        return [member.template_id for member in blueprint.members.all()]

    @extend_schema_field(ANY_OBJECT)
    def get_default_variables(self, blueprint: Blueprint) -> dict[str, Any]:
        return {str(m.template_id): m.default_variables for m in blueprint.members.all()
                if m.default_variables}

    @extend_schema_field(WiringRuleSerializer(many=True))
    def get_wiring(self, blueprint: Blueprint) -> list[dict[str, Any]]:
        return [
            {"source_template": rule.source_template_id, "source_output": rule.source_output,
             "target_template": rule.target_template_id, "target_variable": rule.target_variable}
            for rule in blueprint.wiring.all()
        ]


class PlannedStepSerializer(serializers.Serializer):
    template = serializers.IntegerField(source="template.id")
    template_name = serializers.CharField(source="template.name")
    position = serializers.IntegerField(help_text="BFS level: 0 needs nothing.")
    upstream = serializers.ListField(child=serializers.CharField(),
                                     help_text="Templates it waits for.")
    resolved_variables = serializers.SerializerMethodField()
    missing = serializers.ListField(child=serializers.CharField(),
                                    help_text="Required variables nothing gives a value.")

    class Meta:
        ref_name = "PlannedStep"

    @extend_schema_field(RESOLVED_SCHEMA)
    def get_resolved_variables(self, step) -> dict[str, Any]:
        return step.variables


class PlanSerializer(serializers.Serializer):
    """A blueprint's plan: levels of template ids, the steps with their resolved variables
    and provenance, the wiring edges, and what is wrong (nothing when it can execute)."""

    levels = serializers.SerializerMethodField()
    level_names = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    steps = PlannedStepSerializer(many=True)
    edges = serializers.ListField(child=serializers.DictField())
    problems = serializers.SerializerMethodField()

    class Meta:
        ref_name = "BlueprintPlan"

    @extend_schema_field(serializers.ListField(child=serializers.ListField(
        child=serializers.IntegerField())))
    def get_levels(self, plan) -> list[list[int]]:
        return [[step.template.id for step in level] for level in plan.levels]

    @extend_schema_field(serializers.DictField(child=serializers.ListField(
        child=serializers.CharField())))
    def get_problems(self, plan) -> dict[str, list[str]]:
        return plan.problems.by_field


class BlueprintDetailSerializer(BlueprintSerializer):
    levels = serializers.SerializerMethodField(help_text="Template ids by BFS level.")
    level_names = serializers.SerializerMethodField()

    class Meta(BlueprintSerializer.Meta):
        fields = [*BlueprintSerializer.Meta.fields, "levels", "level_names"]
        read_only_fields = fields
        ref_name = "BlueprintDetail"

    def plan(self, blueprint: Blueprint):
        if "plan" not in self.context:
            self.context["plan"] = selectors.blueprint_plan(blueprint)
        return self.context["plan"]

    @extend_schema_field(serializers.ListField(child=serializers.ListField(
        child=serializers.IntegerField())))
    def get_levels(self, blueprint: Blueprint) -> list[list[int]]:
        return [[step.template.id for step in level] for level in self.plan(blueprint).levels]

    @extend_schema_field(serializers.ListField(child=serializers.ListField(
        child=serializers.CharField())))
    def get_level_names(self, blueprint: Blueprint) -> list[list[str]]:
        return self.plan(blueprint).level_names


class BlueprintWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    templates = serializers.ListField(child=serializers.JSONField(),
                                      help_text="Template ids or names.")
    default_variables = serializers.DictField(child=serializers.DictField(), required=False,
                                              help_text="{template: {variable: value}}")
    wiring = WiringRuleSerializer(many=True, required=False)

    class Meta:
        ref_name = "BlueprintRequest"


# --- executions --------------------------------------------------------------------------


class ExecutionWriteSerializer(serializers.Serializer):
    """Overrides per template (by id or name) and the choices every step shares."""

    variable_overrides = serializers.DictField(child=serializers.DictField(), required=False)
    source_code_versions = serializers.DictField(child=serializers.CharField(), required=False)
    parent_overrides = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False,
        help_text="{template: [subscription id, ...]}",
    )
    integrations = serializers.ListField(child=serializers.JSONField(), required=False)
    secrets = serializers.ListField(child=serializers.JSONField(), required=False)
    storage = serializers.JSONField(required=False, allow_null=True)

    class Meta:
        ref_name = "ExecutionRequest"


class ExecutionStepSerializer(serializers.ModelSerializer):
    template_name = serializers.SerializerMethodField()
    resolved_variables = serializers.SerializerMethodField()
    upstream = serializers.ListField(child=serializers.IntegerField(), read_only=True)
    parent_resources = serializers.SerializerMethodField()
    integrations = serializers.SerializerMethodField()
    secrets = serializers.SerializerMethodField()

    class Meta:
        model = ExecutionStep
        fields = ["id", "template", "template_name", "position", "upstream", "status",
                  "error_message", "resolved_variables", "outputs", "resource",
                  "parent_resources", "integrations", "secrets", "source_code_version",
                  "storage", "process", "teardown_process", "started_at", "completed_at"]
        read_only_fields = fields
        ref_name = "ExecutionStep"

    def get_template_name(self, step: ExecutionStep) -> str:
        return step.template_snapshot.get("name", "")

    @extend_schema_field(RESOLVED_SCHEMA)
    def get_resolved_variables(self, step: ExecutionStep) -> dict[str, Any]:
        return step.resolved_variables

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_parent_resources(self, step: ExecutionStep) -> list[str]:
        return [str(item.pk) for item in step.parent_resources.all()]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_integrations(self, step: ExecutionStep) -> list[int]:
        return [item.pk for item in step.integrations.all()]

    @extend_schema_field(serializers.ListField(child=serializers.IntegerField()))
    def get_secrets(self, step: ExecutionStep) -> list[int]:
        return [item.pk for item in step.secrets.all()]


class ExecutionSerializer(serializers.ModelSerializer):
    blueprint_name = serializers.CharField(source="blueprint.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True,
                                       allow_null=True, default=None)

    class Meta:
        model = Execution
        fields = ["id", "blueprint", "blueprint_name", "status", "error_message", "created_by",
                  "created_at", "started_at", "completed_at", "run", "teardown_status",
                  "teardown_error", "teardown_run"]
        read_only_fields = fields
        ref_name = "Execution"


class ExecutionDetailSerializer(ExecutionSerializer):
    variable_overrides = serializers.SerializerMethodField(
        help_text="{template id: {variable: value}}; secret variables show as ***."
    )
    integrations = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    secrets = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    steps = serializers.SerializerMethodField()
    levels = serializers.SerializerMethodField(help_text="Step template ids by level.")

    class Meta(ExecutionSerializer.Meta):
        fields = [*ExecutionSerializer.Meta.fields, "wiring_snapshot", "variable_overrides",
                  "source_code_versions", "parent_overrides", "integrations", "secrets",
                  "storage", "levels", "steps"]
        read_only_fields = fields
        ref_name = "ExecutionDetail"

    @extend_schema_field(ANY_OBJECT)
    def get_variable_overrides(self, execution: Execution) -> dict[str, Any]:
        masked = {key: dict.fromkeys(values, MASK)
                  for key, values in decrypt_json(execution.secret_overrides).items()}
        keys = set(execution.variable_overrides) | set(masked)
        return {key: {**execution.variable_overrides.get(key, {}), **masked.get(key, {})}
                for key in sorted(keys)}

    def step_rows(self, execution: Execution) -> list[ExecutionStep]:
        if "steps" not in self.context:
            self.context["steps"] = list(selectors.execution_steps(execution))
        return self.context["steps"]

    @extend_schema_field(ExecutionStepSerializer(many=True))
    def get_steps(self, execution: Execution) -> list[dict[str, Any]]:
        return ExecutionStepSerializer(self.step_rows(execution), many=True).data

    @extend_schema_field(serializers.ListField(child=serializers.ListField(
        child=serializers.IntegerField())))
    def get_levels(self, execution: Execution) -> list[list[int]]:
        levels: list[list[int]] = []
        for step in self.step_rows(execution):
            while len(levels) <= step.position:
                levels.append([])
            levels[step.position].append(step.template_id)
        return levels


# --- integrations, secrets, storage ------------------------------------------------------


class IntegrationSerializer(serializers.ModelSerializer):
    credentials = serializers.SerializerMethodField(help_text="Keys only; values show as ***.")

    class Meta:
        model = Integration
        fields = ["id", "name", "description", "kind", "settings", "credentials", "created_at",
                  "updated_at"]
        read_only_fields = fields
        ref_name = "Integration"

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_credentials(self, integration: Integration) -> dict[str, str]:
        return dict.fromkeys(sorted(decrypt_json(integration.credentials)), MASK)


class IntegrationWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.CharField()
    settings = serializers.DictField(required=False)
    credentials = serializers.DictField(child=serializers.CharField(), required=False,
                                        help_text="Write-only: stored encrypted.")

    class Meta:
        ref_name = "IntegrationRequest"


class SecretSerializer(serializers.ModelSerializer):
    value = serializers.SerializerMethodField(help_text="Always ***: values are write-only.")

    class Meta:
        model = Secret
        fields = ["id", "name", "description", "value", "created_at", "updated_at"]
        read_only_fields = fields
        ref_name = "Secret"

    def get_value(self, secret: Secret) -> str:
        return MASK


class SecretWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    value = serializers.CharField(help_text="Write-only: stored encrypted.")

    class Meta:
        ref_name = "SecretRequest"


class StorageBackendSerializer(serializers.ModelSerializer):
    class Meta:
        model = StorageBackend
        fields = ["id", "name", "description", "kind", "settings", "integration", "created_at"]
        read_only_fields = fields
        ref_name = "StorageBackend"


class StorageBackendWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True)
    kind = serializers.CharField()
    settings = serializers.DictField(required=False)
    integration = serializers.JSONField(required=False, allow_null=True)

    class Meta:
        ref_name = "StorageBackendRequest"
