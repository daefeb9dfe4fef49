"""Templates, blueprints, wiring, executions and their steps, integrations, secrets and
storage backends (DESIGN §6).

A `Template` is a reusable resource recipe: a registered workflow (a create workflow or a
task) with the variables it takes and the outputs it exposes. A `Blueprint` puts templates
together, with default variables per template and `WiringRule`s (an output of one template
feeds a variable of another). An `Execution` (InfraKitchen's "workflow") provisions a
blueprint's resources: one `ExecutionStep` per template, each run as a child process of the
engine. Every write goes through `blueprints.services`, which validates it (one validator
for the API, the admin, the pages and the import).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from orchestrator.models import Process, Workflow
from subscriptions.models import Product, Subscription

MAX_NAME = 100


class VariableType(models.TextChoices):
    """JSON types of a variable or an output (`any` matches every type)."""

    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"
    ANY = "any"


class Template(models.Model):
    """A reusable resource recipe: the workflow that provisions it, its variables (name,
    default, required, secret, type, description) and the outputs it exposes (keys of the
    finished process's state, each with a type)."""

    name = models.CharField(max_length=MAX_NAME, unique=True)
    description = models.TextField(blank=True)
    workflow = models.ForeignKey(
        Workflow, on_delete=models.PROTECT, related_name="blueprint_templates",
        help_text="A registered create workflow or task that provisions the resource.",
    )
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="templates",
        help_text="The product a create workflow makes a subscription (the resource) of.",
    )
    variables = models.JSONField(
        default=list, blank=True,
        help_text='[{"name", "default", "required", "secret", "type", "description"}]',
    )
    outputs = models.JSONField(default=list, blank=True, help_text='[{"name", "type"}]')
    source_code_versions = models.JSONField(
        default=list, blank=True, help_text="Versions of the template's code a step may use."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Blueprint(models.Model):
    """A set of templates with default variables per template and wiring rules."""

    name = models.CharField(max_length=MAX_NAME, unique=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, help_text="A disabled blueprint cannot execute.")
    templates = models.ManyToManyField(
        Template, through="BlueprintTemplate", related_name="blueprints"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [
            ("execute_blueprint", "Can create and execute executions of the blueprint"),
        ]

    def __str__(self) -> str:
        return self.name


class BlueprintTemplate(models.Model):
    """A template in a blueprint, with the blueprint's default variables for it."""

    blueprint = models.ForeignKey(Blueprint, on_delete=models.CASCADE, related_name="members")
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="memberships")
    order = models.PositiveIntegerField(default=0)
    default_variables = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["order", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["blueprint", "template"], name="unique_blueprint_template"
            )
        ]

    def __str__(self) -> str:
        return f"{self.blueprint_id}: {self.template_id}"


class WiringRule(models.Model):
    """An output of one template feeds a variable of another in the same blueprint."""

    blueprint = models.ForeignKey(Blueprint, on_delete=models.CASCADE, related_name="wiring")
    source_template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="+")
    source_output = models.CharField(max_length=MAX_NAME)
    target_template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="+")
    target_variable = models.CharField(max_length=MAX_NAME)

    class Meta:
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["blueprint", "target_template", "target_variable"],
                name="one_wire_per_target_variable",
            )
        ]

    def __str__(self) -> str:
        return (f"{self.source_template_id}.{self.source_output} → "
                f"{self.target_template_id}.{self.target_variable}")


class IntegrationKind(models.TextChoices):
    AWS = "aws", "AWS"
    AZURE = "azure", "Azure"
    GCP = "gcp", "Google Cloud"
    GITHUB = "github", "GitHub"
    GITLAB = "gitlab", "GitLab"
    HTTP = "http", "HTTP API"


class Integration(models.Model):
    """A connection to a cloud or code platform: public settings and encrypted credentials."""

    name = models.CharField(max_length=MAX_NAME, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=IntegrationKind.choices)
    settings = models.JSONField(default=dict, blank=True, help_text="Not secret (region, URL...).")
    credentials = models.TextField(blank=True, help_text="Encrypted JSON; never shown.")

    ENCRYPTED_FIELDS = ("credentials",)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Secret(models.Model):
    """A named secret value, stored encrypted, given to the steps that use it in memory."""

    name = models.CharField(max_length=MAX_NAME, unique=True)
    description = models.TextField(blank=True)
    value = models.TextField(help_text="Encrypted; never shown.")

    ENCRYPTED_FIELDS = ("value",)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class StorageKind(models.TextChoices):
    S3 = "s3", "Amazon S3"
    GCS = "gcs", "Google Cloud Storage"
    AZURERM = "azurerm", "Azure Blob Storage"
    HTTP = "http", "HTTP"
    LOCAL = "local", "Local directory"


class StorageBackend(models.Model):
    """Where steps keep their state files (e.g. Terraform state): kind and settings."""

    name = models.CharField(max_length=MAX_NAME, unique=True)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=StorageKind.choices)
    settings = models.JSONField(default=dict, blank=True, help_text="Bucket, prefix, region...")
    integration = models.ForeignKey(
        Integration, null=True, blank=True, on_delete=models.PROTECT, related_name="storages",
        help_text="Credentials to reach the storage.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ExecutionStatus(models.TextChoices):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    ERROR = "error"


class TeardownStatus(models.TextChoices):
    NONE = "", "not torn down"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    ERROR = "error"


class Execution(models.Model):
    """One provisioning of a blueprint's resources (InfraKitchen's "workflow")."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    blueprint = models.ForeignKey(Blueprint, on_delete=models.PROTECT, related_name="executions")
    status = models.CharField(
        max_length=20, choices=ExecutionStatus.choices, default=ExecutionStatus.PENDING,
        db_index=True,
    )
    error_message = models.TextField(blank=True)
    wiring_snapshot = models.JSONField(
        default=list, blank=True, help_text="The wiring when the execution was created."
    )
    variable_overrides = models.JSONField(
        default=dict, blank=True, help_text="{template id: {variable: value}}; no secrets."
    )
    secret_overrides = models.TextField(
        blank=True, help_text="Encrypted {template id: {variable: value}} of secret variables."
    )
    ENCRYPTED_FIELDS = ("secret_overrides",)
    source_code_versions = models.JSONField(default=dict, blank=True)
    parent_overrides = models.JSONField(
        default=dict, blank=True, help_text="{template id: [subscription id, ...]}"
    )
    integrations = models.ManyToManyField(Integration, blank=True, related_name="executions")
    secrets = models.ManyToManyField(Secret, blank=True, related_name="executions")
    storage = models.ForeignKey(
        StorageBackend, null=True, blank=True, on_delete=models.PROTECT, related_name="executions"
    )
    run = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The process of the latest Execute: its steps' processes are its children.",
    )
    teardown_status = models.CharField(
        max_length=20, choices=TeardownStatus.choices, default=TeardownStatus.NONE, blank=True
    )
    teardown_error = models.TextField(blank=True)
    teardown_run = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("execute_execution", "Can execute an execution"),
            ("teardown_execution", "Can tear down the resources an execution created"),
        ]

    def __str__(self) -> str:
        return f"{self.blueprint_id and self.blueprint.name} {str(self.id)[:8]}"


class StepStatus(models.TextChoices):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    ERROR = "error"


class ExecutionStep(models.Model):
    """One template of an execution: its plan (level, resolved variables with provenance),
    the process that ran it, the resource it made and its outputs."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    template = models.ForeignKey(Template, on_delete=models.PROTECT, related_name="steps")
    template_snapshot = models.JSONField(
        default=dict, help_text="The template as it was when the execution was created."
    )
    position = models.PositiveIntegerField(help_text="BFS level: 0 needs nothing.")
    order = models.PositiveIntegerField(help_text="Index in the topological order.")
    upstream = models.JSONField(default=list, blank=True, help_text="Template ids it waits for.")
    status = models.CharField(
        max_length=20, choices=StepStatus.choices, default=StepStatus.PENDING, db_index=True
    )
    error_message = models.TextField(blank=True)
    resolved_variables = models.JSONField(
        default=dict, blank=True, help_text='{variable: {"value", "source"}}; secrets as ***.'
    )
    outputs = models.JSONField(default=dict, blank=True)
    resource = models.ForeignKey(
        Subscription, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent_resources = models.ManyToManyField(Subscription, blank=True, related_name="+")
    integrations = models.ManyToManyField(Integration, blank=True, related_name="+")
    secrets = models.ManyToManyField(Secret, blank=True, related_name="+")
    source_code_version = models.CharField(max_length=MAX_NAME, blank=True)
    storage = models.ForeignKey(
        StorageBackend, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="execution_steps"
    )
    teardown_process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["order"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "template"], name="one_step_per_template")
        ]

    def __str__(self) -> str:
        return f"{self.template_snapshot.get('name', self.template_id)} ({self.status})"


class BlueprintUserObjectPermission(UserObjectPermissionBase):
    """Per-object grants on blueprints with a real foreign key (guardian's direct model)."""

    content_object = models.ForeignKey(Blueprint, on_delete=models.CASCADE)


class BlueprintGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Blueprint, on_delete=models.CASCADE)


class ExecutionUserObjectPermission(UserObjectPermissionBase):
    content_object = models.ForeignKey(Execution, on_delete=models.CASCADE)


class ExecutionGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Execution, on_delete=models.CASCADE)
