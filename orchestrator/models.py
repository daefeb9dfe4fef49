"""The engine's rows: the workflow catalogue, processes, their step log and the engine switch."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase


class WorkflowType(models.TextChoices):
    CORE = "core"
    USER = "user"
    INTERNAL = "internal"


class WorkflowTarget(models.TextChoices):
    CREATE = "create"
    MODIFY = "modify"
    TERMINATE = "terminate"
    VALIDATE = "validate"
    SYSTEM = "system"


class ConcurrencyStrategy(models.TextChoices):
    ENQUEUE = "enqueue"
    CANCEL_NEW = "cancel_new"


class Workflow(models.Model):
    """A catalogue row mirroring one `WorkflowDefinition` in code (synced by migrate_workflows)."""

    name = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=16, choices=WorkflowType.choices, default=WorkflowType.CORE)
    module = models.CharField(max_length=255)
    function = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    target = models.CharField(
        max_length=16, choices=WorkflowTarget.choices, default=WorkflowTarget.SYSTEM
    )
    is_task = models.BooleanField(default=False)
    product_types = models.JSONField(
        default=list, blank=True, help_text="Product types whose products offer this workflow."
    )
    tags = models.JSONField(default=list, blank=True)
    cron = models.CharField(max_length=120, blank=True)
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    concurrency_limit_strategy = models.CharField(
        max_length=16, choices=ConcurrencyStrategy.choices, default=ConcurrencyStrategy.ENQUEUE
    )
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(
        null=True, blank=True,
        help_text="Gone from the code but kept because processes refer to it (audit).",
    )

    class Meta:
        ordering = ["name"]
        permissions = [("start_workflow", "Can start runs of the workflow")]

    def __str__(self) -> str:
        return self.name


class ProcessStatus(models.TextChoices):
    CREATED = "created"
    QUEUED = "queued"
    RUNNING = "running"
    SUSPENDED = "suspended"
    WAITING = "waiting"
    AWAITING_CALLBACK = "awaiting_callback"
    FAILED = "failed"
    API_UNAVAILABLE = "api_unavailable"
    INCONSISTENT_DATA = "inconsistent_data"
    ABORTED = "aborted"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    RESUMED = "resumed"


# Statuses in which the runner may pick a process up and run its next step.
RUNNABLE_STATUSES = (
    ProcessStatus.CREATED,
    ProcessStatus.QUEUED,
    ProcessStatus.RUNNING,
    ProcessStatus.RESUMED,
)
# Statuses a retry (resume without input) starts again from.
RETRYABLE_STATUSES = (
    ProcessStatus.FAILED,
    ProcessStatus.WAITING,
    ProcessStatus.API_UNAVAILABLE,
    ProcessStatus.INCONSISTENT_DATA,
)
TERMINAL_STATUSES = (ProcessStatus.ABORTED, ProcessStatus.CANCELLED, ProcessStatus.COMPLETED)


class Process(models.Model):
    """One run of a workflow: its current state and where it stands."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="processes")
    # Indexed by Meta.indexes (status first): a single-column index and its LIKE twin would
    # only add two entries to write at every status change.
    status = models.CharField(
        max_length=20, choices=ProcessStatus.choices, default=ProcessStatus.CREATED
    )
    state = models.JSONField(default=dict, blank=True)
    planned_steps = models.JSONField(default=list, blank=True)
    position = models.PositiveIntegerField(default=0, help_text="Index of the next planned step.")
    failed_reason = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    assignee = models.CharField(max_length=50, default="SYSTEM")
    is_task = models.BooleanField(default=False, db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    run_name = models.CharField(max_length=255, blank=True)
    call_key = models.CharField(
        max_length=255, blank=True, default="", db_default="",
        help_text="Which call of its parent started it, so a re-run of the parent finds it.",
    )
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_modified_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Execution bookkeeping: the lease (one worker at a time), delivery and retry accounting.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    retry_at = models.DateTimeField(null=True, blank=True)
    # Set while the run waits (`queued`) for a slot of its workflow's concurrency limit;
    # waiting runs get the slots in the order of this time.
    slot_requested_at = models.DateTimeField(null=True, blank=True)
    retry_count = models.PositiveIntegerField(default=0)
    delivery_count = models.PositiveIntegerField(default=0)
    callback_token = models.CharField(max_length=64, null=True, blank=True, unique=True)
    callback_expires_at = models.DateTimeField(null=True, blank=True)
    callback_progress = models.TextField(blank=True)
    secrets = models.TextField(blank=True, help_text="Encrypted input secrets; never shown.")
    # A flow parked until the child processes it waits for end (orchestrator.flows.children).
    waiting_on_children = models.BooleanField(default=False, db_default=False)

    ENCRYPTED_FIELDS = ("secrets",)  # re-encrypted by manage.py rotate_encryption_key

    class Meta:
        ordering = ["-started_at"]
        verbose_name_plural = "processes"
        permissions = [
            ("resume_process", "Can resume or retry a process"),
            ("abort_process", "Can abort a process"),
        ]
        indexes = [
            models.Index(fields=["status", "lease_expires_at"]),
            models.Index(fields=["workflow", "status"]),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "call_key"], condition=~models.Q(call_key=""),
                name="unique_child_call",
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id and self.workflow.name} {self.id}"

    @property
    def next_step_name(self) -> str | None:
        if self.position < len(self.planned_steps):
            return self.planned_steps[self.position]
        return None


class ProcessUserObjectPermission(UserObjectPermissionBase):
    """Per-object grants on processes with a real foreign key (django-guardian's direct
    permission model), so lists of a big table filter by an indexed join."""

    content_object = models.ForeignKey(Process, on_delete=models.CASCADE)


class ProcessGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Process, on_delete=models.CASCADE)


class ProcessTag(models.Model):
    """A run tag (`branch:main`, `node:42`): a row so runs filter by tag on every database."""

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="tag_rows")
    name = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["process", "name"], name="unique_process_tag")
        ]

    def __str__(self) -> str:
        return self.name


class StepStatus(models.TextChoices):
    SUCCESS = "success"
    SKIPPED = "skipped"
    SUSPEND = "suspend"
    WAITING = "waiting"
    FAILED = "failed"
    ABORT = "abort"
    COMPLETE = "complete"
    AWAITING_CALLBACK = "awaiting_callback"


class ProcessStep(models.Model):
    """The append-only log: one row per executed step attempt, with the state after it.

    A flow's task runs are rows too: `task_key` names the call (task name and call order,
    the key replay finds it by), `state` holds `{"result": ...}` or `{"error": ...}`.
    """

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=255)
    status = models.CharField(max_length=20, choices=StepStatus.choices)
    state = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField()
    # Task runs of a flow (empty/default for the steps of a step list).
    # Database defaults too: the runner's hot path writes step rows with raw SQL.
    task_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    attempt = models.PositiveIntegerField(default=1, db_default=1)
    cache_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    cache_expires_at = models.DateTimeField(null=True, blank=True)
    cache_hit = models.BooleanField(default=False, db_default=False)
    replayed = models.BooleanField(
        default=False, db_default=False,
        help_text="A re-run of the flow returned this task's recorded result.",
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            # A task call's attempt commits once, whichever worker (or duplicate delivery) ran it.
            models.UniqueConstraint(
                fields=["process", "task_key", "attempt"],
                condition=~models.Q(task_key="") & models.Q(replayed=False),
                name="unique_task_attempt",
            )
        ]
        indexes = [
            models.Index(
                fields=["cache_key", "-id"],
                condition=~models.Q(cache_key=""),
                name="task_cache_key",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class ProcessLog(models.Model):
    """One log line of a run (a log record or, with `log_prints`, a print), tagged with the
    step or task that wrote it; secrets redacted, bounded per process (orchestrator.runlog)."""

    process = models.ForeignKey(Process, on_delete=models.CASCADE, related_name="log_lines")
    step = models.CharField(
        max_length=255, blank=True, help_text="The step or task run; empty: the run itself."
    )
    task_key = models.CharField(max_length=255, blank=True, default="", db_default="")
    attempt = models.PositiveIntegerField(
        default=1, db_default=1,
        help_text="The task run's attempt; a step's: its automatic retries + 1.",
    )
    level = models.PositiveSmallIntegerField(default=20)
    logger = models.CharField(max_length=255, blank=True)
    message = models.TextField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["process", "id"], name="process_log_lines")]

    def __str__(self) -> str:
        return self.message[:80]

    @property
    def level_name(self) -> str:
        import logging

        return logging.getLevelName(self.level)


class EngineSettings(models.Model):
    """The single engine switch: an admin pauses it for maintenance."""

    paused = models.BooleanField(default=False)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "engine settings"
        permissions = [
            ("pause_engine", "Can pause and unpause the engine"),
            ("view_metrics", "Can read the Prometheus metrics (GET /metrics)"),
        ]

    def __str__(self) -> str:
        return "paused" if self.paused else "running"


class WorkerPing(models.Model):
    """A row written by the `orchestrator.ping` task: proof that a worker consumed it."""

    marker = models.CharField(max_length=100, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.marker


class WorkerHeartbeat(models.Model):
    """A Celery worker as it reports itself: written when it starts, every
    ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS while it runs, and when it stops cleanly
    (`orchestrator.heartbeat`). One row per node name: a restarted worker takes its row back.
    A worker killed without a word is told by its `last_seen_at` (selectors.workers)."""

    name = models.CharField(max_length=255, unique=True, help_text="Its node name (-n).")
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    queues = models.JSONField(default=list, blank=True)
    pool = models.CharField(max_length=50, blank=True)
    concurrency = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        default_permissions = ("view",)  # written by the workers only

    def __str__(self) -> str:
        return self.name


class AuditEvent(models.Model):
    """One thing a user did outside a process's own steps (pausing the engine, aborting or
    deleting a process, setting a subscription in sync, an admin edit...): who, what, when,
    from where. Append-only: written by `orchestrator.audit.record_action`, never edited."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(
        max_length=150, blank=True, help_text="The username then; empty for the system."
    )
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100, blank=True, db_index=True)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    object_repr = models.CharField(max_length=200, blank=True)
    summary = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    via = models.CharField(max_length=16, help_text="page, api, admin or system")

    class Meta:
        ordering = ["-at", "-id"]
        default_permissions = ("view",)  # append-only: nobody adds, changes or deletes
        indexes = [models.Index(fields=["-at", "-id"], name="audit_newest_first")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_name or 'system'} {self.action}"


class IdempotencyKey(models.Model):
    """A start request's key (the API's `Idempotency-Key` header, a browser form's one-time
    key): the same key from the same user answers with the run its first use started.
    Written in the start's own transaction; expires after ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request it came with.")
    process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="unique_idempotency_key")
        ]

    def __str__(self) -> str:
        return self.key


class ApiToken(models.Model):
    """An API token (`Authorization: Token ...`). Only its SHA-256 digest is stored: the token
    is shown once, when `POST /api/auth/token/` issues it, and a copy of the database cannot
    be replayed. It lapses after ORCHESTRATOR_API_TOKEN_IDLE_DAYS without use."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="Its first characters, to tell it apart.")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API token"
        default_permissions = ("view", "delete")  # issued by the API only; deleting revokes

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class ScheduleRun(models.Model):
    """How the last run of a periodic task ended, as the worker that ran it saw it
    (celery-beat's own row only knows when it sent the task). One row per periodic task."""

    name = models.CharField(max_length=200, unique=True, help_text="The periodic task's name.")
    finished_at = models.DateTimeField()
    succeeded = models.BooleanField()
    summary = models.CharField(max_length=500, blank=True)
    process = models.ForeignKey(
        Process, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The run it started (a workflow schedule).",
    )

    def __str__(self) -> str:
        return f"{self.name}: {'ok' if self.succeeded else 'failed'} at {self.finished_at}"


class NamedLock(models.Model):
    """A held named lock where the database has no advisory locks (orchestrator.lock)."""

    key = models.BigIntegerField(unique=True)
    label = models.CharField(max_length=401)
    owner = models.CharField(max_length=32)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.label
