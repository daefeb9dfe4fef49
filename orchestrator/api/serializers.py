"""Serializers of the process/workflow API (DESIGN §8).

Output serializers only read; writes go through the service functions. Request serializers
check the shape of a payload (types, sizes) before anything reaches a service, so hostile
input is a 400 naming the field, never a 500. Component names are explicit and unique for
the OpenAPI schema.
"""

from __future__ import annotations

from typing import Any

from django_celery_beat.models import PeriodicTask
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orchestrator import concurrency, extensions
from orchestrator.exceptions import FormInvalid
from orchestrator.extensions import Touched
from orchestrator.forms import MAX_PAGES
from orchestrator.models import AuditEvent, Process, ProcessLog, WorkerHeartbeat, Workflow
from orchestrator.schedules import SCHEDULE_PREFIX, cron_of, describe_schedule, next_run_at
from orchestrator.selectors import WORKER_STATUSES
from orchestrator.services import MAX_BATCH_RUNS

MAX_TAGS = 50
# A form's JSON Schema, or null when there is no page to fill in.
NULLABLE_FORM_SCHEMA = {"type": "object", "additionalProperties": {}, "nullable": True}

# --- errors -------------------------------------------------------------------------------


class ApiErrorSerializer(serializers.Serializer):
    """The one error shape: a message plus field errors keyed by field name."""

    detail = serializers.CharField()

    class Meta:
        ref_name = "ApiError"


class InputFormErrorSerializer(ApiErrorSerializer):
    """An input error: field errors and, when a page is concerned, its JSON Schema in `form`."""

    form = serializers.JSONField(required=False, help_text="JSON Schema of the page to fill in.")

    class Meta:
        ref_name = "InputFormError"


# --- workflows ----------------------------------------------------------------------------


class WorkflowSerializer(serializers.ModelSerializer):
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    product_types = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Workflow
        fields = [
            "name",
            "description",
            "type",
            "target",
            "is_task",
            "product_types",
            "tags",
            "cron",
            "concurrency_limit",
            "concurrency_limit_strategy",
        ]
        read_only_fields = fields


class WorkflowDetailSerializer(WorkflowSerializer):
    form = serializers.SerializerMethodField(
        help_text="JSON Schema of the first input page, or null when the workflow takes no input."
    )

    class Meta(WorkflowSerializer.Meta):
        fields = [*WorkflowSerializer.Meta.fields, "form"]
        read_only_fields = fields

    @extend_schema_field(NULLABLE_FORM_SCHEMA)
    def get_form(self, workflow: Workflow) -> dict[str, Any] | None:
        return self.context["form"]


# --- processes ----------------------------------------------------------------------------


class ProcessSerializer(serializers.ModelSerializer):
    """A process in a list: where it stands, without its state and step log."""

    workflow = serializers.CharField(source="workflow.name", read_only=True)
    tags = serializers.SerializerMethodField()
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True, default=None
    )
    parent = serializers.SerializerMethodField(
        help_text="The parent process, when the user may view it (else null)."
    )

    class Meta:
        model = Process
        fields = [
            "id",
            "workflow",
            "status",
            "is_task",
            "run_name",
            "assignee",
            "tags",
            "parent",
            "created_by",
            "failed_reason",
            "slot_requested_at",
            "started_at",
            "last_modified_at",
            "finished_at",
        ]
        read_only_fields = fields
        extra_kwargs = {"slot_requested_at": {
            "help_text": "Set while the run waits (queued) for a concurrency slot."
        }}

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_parent(self, process: Process) -> Any:
        # `parent_visible` comes from selectors.with_parent_visibility; unknown: not shown.
        return process.parent_id if getattr(process, "parent_visible", False) else None

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_tags(self, process: Process) -> list[str]:
        # Reads the prefetched rows (ProcessViewSet prefetches them): no query per process.
        return [tag.name for tag in process.tag_rows.all()]


class ProcessStepSerializer(serializers.Serializer):
    """One row of the step log (built from `selectors.process_step_diffs`)."""

    name = serializers.CharField(source="step.name")
    status = serializers.CharField(source="step.status")
    state = serializers.JSONField(source="step.state")
    started_at = serializers.DateTimeField(source="step.started_at")
    completed_at = serializers.DateTimeField(source="step.completed_at")
    created_by = serializers.CharField(
        source="step.created_by.username", allow_null=True, default=None
    )
    task_key = serializers.CharField(
        source="step.task_key",
        help_text="A flow's task run: the call's key (task name and call order); else empty.",
    )
    attempt = serializers.IntegerField(source="step.attempt")
    cache_hit = serializers.BooleanField(source="step.cache_hit")
    replayed = serializers.BooleanField(
        source="step.replayed",
        help_text="A re-run of the flow returned this task's recorded result (no run).",
    )
    changed = serializers.JSONField(
        help_text='What the step changed, path by path: {path: {"old": value, "new": value}}; '
                  'a path is a state key or a nested one ("subscription.size", "ports[1].speed"). '
                  "Empty for task runs, whose `state` holds their `result` or `error`."
    )
    removed = serializers.ListField(
        child=serializers.CharField(), help_text="State paths the step removed."
    )

    class Meta:
        ref_name = "ProcessStep"


class TouchedSerializer(serializers.Serializer):
    """Something a process touched (orchestrator.extensions.Touched)."""

    kind = serializers.CharField()
    id = serializers.CharField()
    label = serializers.CharField()
    url = serializers.CharField(help_text="Its page, when it has one.")
    status = serializers.CharField()
    note = serializers.CharField()

    class Meta:
        ref_name = "TouchedObject"


class ProcessLogSerializer(serializers.ModelSerializer):
    """One line of a run log: a log record (or, with `log_prints`, a print) of the run."""

    step = serializers.CharField(
        read_only=True, help_text="The step or task run that logged it; empty: the run itself."
    )
    level = serializers.CharField(source="level_name", read_only=True,
                                  help_text="DEBUG, INFO, WARNING, ERROR or CRITICAL.")

    class Meta:
        model = ProcessLog
        fields = ["id", "created_at", "level", "step", "task_key", "attempt", "logger", "message"]
        read_only_fields = fields
        ref_name = "ProcessLogLine"


class ProcessDetailSerializer(ProcessSerializer):
    """A process with its state, its step log and, while suspended, the form it waits for.

    The encrypted `secrets`, the callback token and the lease fields are never part of it.
    """

    state = serializers.JSONField(read_only=True)
    planned_steps = serializers.ListField(child=serializers.CharField(), read_only=True)
    next_step = serializers.CharField(source="next_step_name", read_only=True, allow_null=True)
    steps = serializers.SerializerMethodField()
    form = serializers.SerializerMethodField(
        help_text="JSON Schema of the input page a suspended process waits for, else null."
    )
    touched = serializers.SerializerMethodField(
        help_text="What this process touched, as the domain apps report it "
        "(subscriptions, blueprint executions, ...), as far as the user may see."
    )
    subscriptions = serializers.SerializerMethodField(
        help_text="The subscriptions this process touched (id and description)."
    )
    runs_ahead = serializers.SerializerMethodField(
        help_text="While the run waits for a concurrency slot: how many runs get one first."
    )

    class Meta(ProcessSerializer.Meta):
        fields = [
            *ProcessSerializer.Meta.fields,
            "state",
            "traceback",
            "callback_progress",
            "planned_steps",
            "position",
            "next_step",
            "steps",
            "form",
            "touched",
            "subscriptions",
            "runs_ahead",
        ]
        read_only_fields = fields

    def get_runs_ahead(self, process: Process) -> int | None:
        return concurrency.runs_ahead(process)

    @extend_schema_field(ProcessStepSerializer(many=True))
    def get_steps(self, process: Process) -> list[dict[str, Any]]:
        return ProcessStepSerializer(self.context.get("steps", []), many=True).data

    @extend_schema_field(NULLABLE_FORM_SCHEMA)
    def get_form(self, process: Process) -> dict[str, Any] | None:
        return self.context.get("form")

    def touched_items(self, process: Process) -> list[Touched]:
        cache = self.context.setdefault("touched", {})
        if process.pk not in cache:
            cache[process.pk] = extensions.touched(self.context["request"].user, process)
        return cache[process.pk]

    @extend_schema_field(TouchedSerializer(many=True))
    def get_touched(self, process: Process) -> list[dict[str, str]]:
        return [item.as_dict() for item in self.touched_items(process)]

    @extend_schema_field(
        {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string", "format": "uuid"}, "description": {"type": "string"}}}}
    )
    def get_subscriptions(self, process: Process) -> list[dict[str, str]]:
        """The touched items of kind "subscription", in this field's original shape."""
        return [
            {"id": item.id, "description": item.label}
            for item in self.touched_items(process)
            if item.kind == "subscription"
        ]


class ProcessStartSerializer(serializers.Serializer):
    """`POST /api/processes/`: which workflow, its input pages, run tags, and the subscription
    or product it runs on."""

    workflow = serializers.CharField(max_length=255)
    input = serializers.ListField(
        child=serializers.DictField(),
        max_length=MAX_PAGES,
        required=False,
        default=list,
        help_text="The input form pages, in order; each an object of field values.",
    )
    tags = serializers.ListField(
        child=serializers.CharField(max_length=255),
        max_length=MAX_TAGS,
        required=False,
        default=list,
    )
    subscription = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=255,
        help_text="The subscription a modify/terminate/validate workflow runs on (its id).",
    )
    product = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=255,
        help_text="The product a create workflow makes a subscription of (id or name).",
    )

    class Meta:
        ref_name = "ProcessStartRequest"


def check_idempotency_key(key: str, what: str = "An idempotency key") -> str:
    """An idempotency key is 1 to 255 printable ASCII characters (else a 400 naming it)."""
    if not 1 <= len(key) <= 255 or not all(" " <= char <= "~" for char in key):
        message = f"{what} must be 1 to 255 printable ASCII characters."
        raise FormInvalid(message, {"idempotency_key": [message]})
    return key


class BatchRunSerializer(ProcessStartSerializer):
    """One run of `POST /api/processes/batch/`: a start request, and its own idempotency key."""

    idempotency_key = serializers.CharField(
        required=False,
        allow_blank=False,
        trim_whitespace=False,
        help_text=(
            "Optional, 1 to 255 printable ASCII characters: this run's key, as the "
            "Idempotency-Key header is a single start's (the same key and run again answer "
            "with the run its first use started, `replayed: true`; with another run, 422)."
        ),
    )

    class Meta:
        ref_name = "BatchRunRequest"

    def validate_idempotency_key(self, value: str) -> str:
        try:
            return check_idempotency_key(value)
        except FormInvalid as error:
            raise serializers.ValidationError(error.message) from None


class BatchStartSerializer(serializers.Serializer):
    """`POST /api/processes/batch/`: many runs started in one transaction (all or none)."""

    runs = serializers.ListField(
        child=BatchRunSerializer(), min_length=1, max_length=MAX_BATCH_RUNS
    )

    class Meta:
        ref_name = "BatchStartRequest"


class BatchRunResultSerializer(ProcessSerializer):
    replayed = serializers.SerializerMethodField(
        help_text="True when the run's idempotency key answered with the run it started before."
    )

    class Meta(ProcessSerializer.Meta):
        fields = [*ProcessSerializer.Meta.fields, "replayed"]
        read_only_fields = fields
        ref_name = "BatchRunResult"

    def get_replayed(self, process: Process) -> bool:
        return process.pk in self.context.get("replayed", ())


class BatchStartResultSerializer(serializers.Serializer):
    runs = BatchRunResultSerializer(many=True)

    class Meta:
        ref_name = "BatchStartResult"


class ProcessResumeSerializer(serializers.Serializer):
    """`POST /api/processes/{id}/resume/`: input pages for a suspended process, or nothing."""

    input = serializers.ListField(
        child=serializers.DictField(),
        max_length=MAX_PAGES,
        required=False,
        default=list,
    )

    class Meta:
        ref_name = "ProcessResumeRequest"


class CallbackProgressSerializer(serializers.Serializer):
    message = serializers.CharField()

    class Meta:
        ref_name = "CallbackProgressRequest"


class DetailSerializer(serializers.Serializer):
    detail = serializers.CharField()

    class Meta:
        ref_name = "DetailMessage"


# --- engine and schedules -----------------------------------------------------------------


class EngineSerializer(serializers.Serializer):
    paused = serializers.BooleanField()

    class Meta:
        ref_name = "EngineStatus"


class ScheduleOutcomeSerializer(serializers.Serializer):
    finished_at = serializers.DateTimeField()
    succeeded = serializers.BooleanField()
    summary = serializers.CharField()
    process = serializers.UUIDField(allow_null=True)
    process_status = serializers.CharField(allow_null=True)

    class Meta:
        ref_name = "ScheduleOutcome"


class ScheduleSerializer(serializers.ModelSerializer):
    """A django-celery-beat periodic task: a workflow's cron schedule or an engine task."""

    workflow = serializers.SerializerMethodField()
    cron = serializers.SerializerMethodField()
    interval = serializers.SerializerMethodField()
    schedule_in_words = serializers.SerializerMethodField()
    next_run_at = serializers.SerializerMethodField()
    last_outcome = serializers.SerializerMethodField(
        help_text="How the worker finished the last run celery-beat sent (null before one "
                  "finished); `process` is the run a workflow schedule started, when visible."
    )

    class Meta:
        model = PeriodicTask
        fields = [
            "id",
            "name",
            "workflow",
            "task",
            "cron",
            "interval",
            "enabled",
            "queue",
            "schedule_in_words",
            "last_run_at",
            "total_run_count",
            "last_outcome",
            "next_run_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_workflow(self, task: PeriodicTask) -> str | None:
        if task.name.startswith(SCHEDULE_PREFIX):
            return task.name.removeprefix(SCHEDULE_PREFIX)
        return None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_cron(self, task: PeriodicTask) -> str | None:
        return cron_of(task) or None

    @extend_schema_field(serializers.CharField())
    def get_schedule_in_words(self, task: PeriodicTask) -> str:
        return describe_schedule(task)

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_next_run_at(self, task: PeriodicTask) -> str | None:
        when = next_run_at(task)
        return serializers.DateTimeField().to_representation(when) if when else None

    @extend_schema_field(ScheduleOutcomeSerializer(allow_null=True))
    def get_last_outcome(self, task: PeriodicTask) -> dict[str, Any] | None:
        run = self.context.get("outcomes", {}).get(task.name)
        if run is None:
            return None
        visible = run.process_id in self.context.get("visible_processes", ())
        return ScheduleOutcomeSerializer({
            "finished_at": run.finished_at,
            "succeeded": run.succeeded,
            "summary": run.summary if visible or not run.process_id else "started a process",
            "process": run.process_id if visible else None,
            "process_status": run.process.status if visible else None,
        }).data

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_interval(self, task: PeriodicTask) -> str | None:
        if task.interval is None:
            return None
        return f"every {task.interval.every} {task.interval.period}"


# --- the audit trail ----------------------------------------------------------------------


class AuditEventSerializer(serializers.ModelSerializer):
    """One thing a user did outside a process's own steps: who, what, when, from where."""

    actor = serializers.CharField(
        source="actor_name", read_only=True, help_text="The username; empty for the system."
    )

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "summary",
            "detail",
            "client_address",
            "via",
        ]
        read_only_fields = fields
        ref_name = "AuditEvent"


class WorkerSerializer(serializers.ModelSerializer):
    """A Celery worker as its heartbeats describe it (orchestrator.heartbeat)."""

    status = serializers.ChoiceField(
        choices=WORKER_STATUSES, read_only=True,
        help_text="alive: heard from within three heartbeats; stopped: shut down cleanly; "
                  "lost: silent since (killed, hung or cut off).",
    )

    class Meta:
        model = WorkerHeartbeat
        fields = [
            "name", "status", "queues", "hostname", "pid", "pool", "concurrency",
            "started_at", "last_seen_at", "stopped_at",
        ]
        ref_name = "Worker"
