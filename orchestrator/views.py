"""The engine's pages; each view is thin and calls selectors and services.

Every page works without JavaScript. The process page's status and step log live in a
fragment that static/js/live.js re-fetches while the process can still move on its own.
Multi-page input forms in the browser: `orchestrator.forms.PagedForm`.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets as token_generator
from typing import Any

import django_filters
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe
from django_celery_beat.models import PeriodicTask
from guardian.shortcuts import get_objects_for_user
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.exceptions import AuthenticationFailed

from orchestrator import (
    concurrency,
    extensions,
    health,
    metrics,
    registry,
    schedules,
    selectors,
    services,
)
from orchestrator.api.filters import AuditEventFilter, WorkflowFilter
from orchestrator.exceptions import (
    IdempotencyKeyReused,
    NotFound,
    OrchestratorError,
    RunCancelled,
)
from orchestrator.filters import BooleanFilter, StrictFilterSet
from orchestrator.forms import PAGES_FIELD, PagedForm, add_service_errors, form_owner
from orchestrator.models import (
    RETRYABLE_STATUSES,
    RUNNABLE_STATUSES,
    TERMINAL_STATUSES,
    EngineSettings,
    Process,
    ProcessStatus,
    ProcessTag,
    Workflow,
)
from orchestrator.permissions import user_may
from orchestrator.redaction import Redactor, redacting, redactor_for
from orchestrator.runner import StepsGone
from orchestrator.tokens import ApiTokenAuthentication

logger = logging.getLogger(__name__)

# What a start page is for comes as `?<target>=` on GET (`?subscription=`, `?product=`, the
# start targets the domain apps' extensions own) and in hidden `__<target>` fields on POST.
TARGET_FIELD_PREFIX = "__"
# A start form's one-time key (see start_once_from_form).
ONCE_FIELD = "__once"
ONCE_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")
PAGE_SIZE = 25
DASHBOARD_ROWS = 10
LOG_LINES_SHOWN = 200  # the process page shows the run log's last lines; the API has them all
# Statuses in which a process moves on without anyone acting: the page keeps polling.
LIVE_STATUSES = (*RUNNABLE_STATUSES, ProcessStatus.WAITING, ProcessStatus.AWAITING_CALLBACK)
ATTENTION_STATUSES = (*RETRYABLE_STATUSES,)
INPUT_STATUSES = (ProcessStatus.SUSPENDED, ProcessStatus.AWAITING_CALLBACK)


# --- health ---------------------------------------------------------------------------------


@login_not_required
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and probes, without login: each part "ok" or "down" (200 when all
    answer, else 503). What failed, with its host, goes to the log, not to the answer."""
    problems = health.probe()
    for line in problems.values():
        if line:
            logger.warning("healthz: %s", line)
    body = {part: "down" if line else "ok" for part, line in problems.items()}
    down = any(problems.values())
    return JsonResponse({"status": "unavailable" if down else "ok", **body},
                        status=503 if down else 200)


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read /metrics: the bearer token of
    ORCHESTRATOR_METRICS_TOKEN, or a user with orchestrator.view_metrics, logged in or
    sending an API token (`Authorization: Token <key>`, as the REST API takes it)."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    expected = settings.ORCHESTRATOR_METRICS_TOKEN
    user = request.user
    if scheme.lower() == "bearer":
        if expected and hmac.compare_digest(credentials.strip().encode(), expected.encode()):
            return None
        return unauthorized("Invalid metrics token.")
    if scheme.lower() == "token":
        try:
            user, _ = ApiTokenAuthentication().authenticate_credentials(credentials.strip())
        except AuthenticationFailed as error:
            return unauthorized(str(error.detail))
    if not user.is_authenticated:
        return unauthorized("Authentication credentials were not provided.")
    if user_may(user, "orchestrator.view_metrics"):
        return None
    return JsonResponse(
        {"detail": "You do not have the permission 'orchestrator.view_metrics' for this."},
        status=403,
    )


def unauthorized(detail: str) -> JsonResponse:
    refusal = JsonResponse({"detail": detail}, status=401)
    refusal["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return refusal


@login_not_required
@require_safe
def prometheus_metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics (orchestrator.metrics), read from the database at each scrape."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        return refusal
    return HttpResponse(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST)


# --- dashboard and engine -------------------------------------------------------------------


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    processes = selectors.processes_for_user(request.user).select_related("created_by")
    engine = EngineSettings.objects.filter(pk=1).select_related("changed_by").first()
    context = {
        "running": processes.filter(status__in=RUNNABLE_STATUSES)[:DASHBOARD_ROWS],
        "failed": processes.filter(status__in=ATTENTION_STATUSES)[:DASHBOARD_ROWS],
        "suspended": processes.filter(status__in=INPUT_STATUSES)[:DASHBOARD_ROWS],
        "recent": processes.filter(status__in=TERMINAL_STATUSES)[:DASHBOARD_ROWS],
        "counts": {
            row["status"]: row["n"]
            for row in processes.order_by().values("status").annotate(n=Count("pk"))
        },
        "engine": engine,
        "may_pause": user_may(request.user, "orchestrator.pause_engine"),
    }
    context["count_running"] = sum(context["counts"].get(s, 0) for s in RUNNABLE_STATUSES)
    context["count_failed"] = sum(context["counts"].get(s, 0) for s in ATTENTION_STATUSES)
    context["count_suspended"] = sum(context["counts"].get(s, 0) for s in INPUT_STATUSES)
    return render(request, "orchestrator/dashboard.html", context)


@require_POST
@login_required
def engine_pause(request: HttpRequest) -> HttpResponse:
    paused = request.POST.get("paused") == "1"
    services.set_engine_paused(paused=paused, user=request.user)
    if paused:
        messages.warning(request, "Engine paused: steps in flight finish, no new step starts.")
    else:
        messages.success(request, "Engine running again: waiting runs continue.")
    return redirect_back(request, reverse("dashboard"))


def redirect_back(request: HttpRequest, default: str) -> HttpResponse:
    """Back to the page that posted, when it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect(default)


# --- workflows ------------------------------------------------------------------------------


def startable_ids(user, workflows: QuerySet[Workflow]) -> set[int]:
    """Ids of the workflows `user` may start: the model permission, or a per-object grant."""
    if user_may(user, "orchestrator.start_workflow"):
        return set(workflows.values_list("pk", flat=True))
    if not user.is_active:
        return set()
    granted = get_objects_for_user(
        user, "orchestrator.start_workflow", klass=workflows, accept_global_perms=False
    )
    return set(granted.values_list("pk", flat=True))


@login_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    """The catalogue, filtered by type, target, tag and task (the API's filters)."""
    visible = selectors.workflows_for_user(request.user).order_by("is_task", "name")
    catalogue_filter = WorkflowFilter(request.GET or None, queryset=visible)
    workflows = catalogue_filter.rows()
    startable = startable_ids(request.user, workflows)
    rows = [
        {
            "workflow": workflow,
            "may_start": workflow.pk in startable,
            "in_code": registry.get_definition(workflow.name) is not None,
        }
        for workflow in workflows
    ]
    context = {"rows": rows, "filter": catalogue_filter, "filtered": bool(request.GET)}
    status = 400 if catalogue_filter.errors else 200
    return render(request, "orchestrator/workflow_list.html", context, status=status)


def start_page_for(request: HttpRequest, workflow: Workflow) -> extensions.StartPage:
    """What the extensions show about the start's targets: from the query string on GET,
    from the form's hidden fields on POST. Unknown, invisible or malformed ones are a 404."""
    source, prefix = (request.POST, TARGET_FIELD_PREFIX) if request.method == "POST" else (
        request.GET, ""
    )
    raw = {name: source.get(prefix + name, "") for name in extensions.start_target_names()}
    page = extensions.StartPage()
    for extension, own in extensions.split_targets(raw):
        try:
            part = extension.start_page(request.user, workflow, own)
        except NotFound as error:
            raise Http404(error.message) from None
        page.targets.extend(part.targets)
        page.choices.extend(part.choices)
        page.problem = page.problem or part.problem
        page.initial.update(part.initial)
    return page


@login_required
def workflow_start(request: HttpRequest, name: str) -> HttpResponse:
    workflow = get_object_or_404(selectors.workflows_for_user(request.user), name=name)
    if not user_may(request.user, "orchestrator.start_workflow", workflow):
        raise PermissionDenied("You may not start this workflow.")
    definition = registry.get_definition(name)
    if definition is None:
        raise Http404("This workflow is no longer in the code registry.")
    start_page = start_page_for(request, workflow)
    back = next((target for target in start_page.targets if target.back_url), None)
    if start_page.choices and request.method == "GET":  # what the run is for, first
        context = {"workflow": workflow, "choices": start_page.choices,
                   "targets": start_page.targets, "back": back, "problem": start_page.problem}
        return render(request, "orchestrator/workflow_start.html", context)
    targets = {target.name: target.value for target in start_page.targets}
    spec = definition.load()
    purpose = f"start:{workflow.name}:" + ":".join(f"{k}={v}" for k, v in sorted(targets.items()))
    paged = PagedForm(
        getattr(spec, "initial_input_form", None),
        state=services.start_form_state(targets),
        purpose=purpose,
        user=request.user,
        owner=form_owner(request),
    )
    try:
        if request.method == "POST":
            paged.submit(request.POST)
        else:
            paged.start()
    except Exception as error:  # the form's own code failed: say so, never a 500
        # It saw what was typed, secrets too: neither the log nor the message may show them.
        typed = [*request.POST.values(), *(v for page in paged.pages for v in page.values())]
        redact = Redactor(typed)
        with redacting(redact):
            logger.exception("input form of %s failed", name)
        messages.error(request, redact(f"The input form of {name} failed: {error}"))
        return redirect("workflow-list")
    if request.method == "POST" and paged.complete and not paged.errors:
        try:
            process, replayed = start_once_from_form(request, name, paged.pages, targets)
        except IdempotencyKeyReused:
            paged.errors.append("This form was submitted before, with other values; submit it "
                                "again to start another run.")
        except RunCancelled as cancelled:  # stored as cancelled: its page says why
            messages.error(request, f"This run of {name} was cancelled at once: see why below.")
            return redirect("process-detail", pk=cancelled.process.pk)
        except OrchestratorError as error:
            paged.errors.extend(add_service_errors(paged.form, error) or [error.message])
            messages.error(request, error.message)
        else:
            if replayed:
                messages.info(request, "This form was submitted before: here is the run it "
                                       "started (no second run).")
            else:
                messages.success(request, f"Started {name}.")
            return redirect("process-detail", pk=process.pk)
    form = paged.form
    if form is not None and not form.is_bound:
        for field_name, value in start_page.initial.items():
            if field_name in form.fields:
                form.initial.setdefault(field_name, value)
    context = {
        "workflow": workflow,
        "paged": paged,
        "pages_field": PAGES_FIELD,
        "once_field": ONCE_FIELD,
        "once": token_generator.token_urlsafe(24),
        "target_prefix": TARGET_FIELD_PREFIX,
        "targets": start_page.targets,
        "back": back,
        "problem": "" if request.method == "POST" else start_page.problem,
    }
    status = 400 if request.method == "POST" and (paged.errors or _has_errors(paged.form)) else 200
    return render(request, "orchestrator/workflow_start.html", context, status=status)


def start_once_from_form(
    request: HttpRequest, name: str, pages: list[dict[str, Any]], targets: dict[str, str]
) -> tuple[Process, bool]:
    """Start from the browser form. Each rendering of the form carries a one-time key, so
    a double submit (two clicks, a resent POST) makes one run: the second answers with the
    first's run (True). A POST without a well-formed key starts as before."""
    start: dict[str, Any] = {
        "workflow_name": name, "input_pages": pages, "user": request.user, **targets
    }
    once = request.POST.get(ONCE_FIELD, "")
    if not ONCE_KEY.fullmatch(once):
        return services.start_process(**start), False
    return services.start_process_once(
        idempotency_key=f"form:{once}",
        fingerprint=services.request_fingerprint([name, targets, pages]),
        **start,
    )


def _has_errors(form: forms.BaseForm | None) -> bool:
    return bool(form is not None and form.is_bound and form.errors)


# --- processes ------------------------------------------------------------------------------


class ProcessFilter(StrictFilterSet):
    """The list's GET filters; the same names as the API's query parameters. A malformed
    value is shown as the filter's error and nothing is listed."""

    workflow = django_filters.ChoiceFilter(field_name="workflow__name", empty_label="any")
    status = django_filters.ChoiceFilter(choices=ProcessStatus.choices, empty_label="any")
    tag = django_filters.CharFilter(
        field_name="tag_rows__name", distinct=True, max_length=255, label="Tag"
    )
    is_task = BooleanFilter(
        label="Task runs",
        widget=forms.Select(choices=[("", "any"), ("true", "tasks only"), ("false", "workflows")]),
    )

    class Meta:
        model = Process
        fields = ["workflow", "status", "tag", "is_task"]

    def __init__(self, *args, workflow_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["workflow"].extra["choices"] = [(name, name) for name in workflow_names]


@login_required
def process_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    names = selectors.workflows_for_user(user).values_list("name", flat=True)
    queryset = (
        selectors.processes_for_user(user)
        .select_related("created_by")
        .prefetch_related(Prefetch("tag_rows", queryset=ProcessTag.objects.order_by("name")))
        .order_by("-started_at", "-pk")
    )
    process_filter = ProcessFilter(request.GET or None, queryset=queryset, workflow_names=names)
    page = Paginator(process_filter.rows(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filter": process_filter, "page": page, "processes": page.object_list}
    status = 400 if process_filter.errors else 200
    return render(request, "orchestrator/process_list.html", context, status=status)


def visible_process(request: HttpRequest, pk) -> Process:
    """The process if the user may see it; a 404 otherwise, never a leak."""
    visible = selectors.processes_for_user(request.user).select_related("created_by", "parent")
    return get_object_or_404(selectors.with_parent_visibility(visible, request.user), pk=pk)


def input_form_for(process: Process, request: HttpRequest) -> tuple[PagedForm | None, str]:
    """The suspended process's input form, or a reason why it cannot be shown."""
    try:
        spec = selectors.current_input_form(process)
    except StepsGone as error:
        return None, f"The input form cannot be shown: {error}"
    if spec is None:
        return None, ""
    purpose = f"resume:{process.pk}:{process.position}"
    paged = PagedForm(
        spec, selectors.input_state(process), purpose=purpose, user=request.user,
        owner=form_owner(request),
    )
    return paged, ""


def form_failure(process: Process, error: Exception, what: str) -> str:
    """Log that a suspended process's form code failed; say so on the page. The form saw
    the run's secrets: neither the log nor the page may show them."""
    redact = redactor_for(process)
    with redacting(redact):
        logger.exception("input form of process %s failed", process.pk)
    return redact(f"{what}: {error}")


def process_context(request: HttpRequest, process: Process, paged: PagedForm | None = None):
    user = request.user
    status = process.status
    may_resume = user_may(user, "orchestrator.resume_process", process)
    input_problem = ""
    if status == ProcessStatus.SUSPENDED and may_resume and paged is None:
        paged, input_problem = input_form_for(process, request)
        if paged is not None:
            try:
                paged.start()
            except Exception as error:  # the form's own code failed
                paged = None
                input_problem = form_failure(process, error, "The input form cannot be shown")
    log_lines, log_count = selectors.process_log_tail(process, LOG_LINES_SHOWN)
    return {
        "process": process,
        "is_flow": registry.is_flow(process.workflow.name),
        # A name of its own (a flow's `flow_run_name`, a client's `run_name`), not the default.
        "run_name": "" if process.run_name == services.default_run_name(
            process.workflow.name, process) else process.run_name,
        "runs_ahead": concurrency.runs_ahead(process),
        "steps": selectors.process_step_diffs(process),
        "tags": sorted(process.tag_rows.values_list("name", flat=True)),
        "children": selectors.processes_for_user(user).filter(parent=process)
        .order_by("started_at", "pk"),
        "log_lines": log_lines,
        "log_count": log_count,
        "log_lines_shown": LOG_LINES_SHOWN,
        "live": status in LIVE_STATUSES,
        "may_resume": may_resume,
        "may_retry": may_resume and status in RETRYABLE_STATUSES,
        "may_abort": status not in TERMINAL_STATUSES
        and user_may(user, "orchestrator.abort_process", process),
        "may_delete": process.is_task and user_may(user, "orchestrator.delete_process", process),
        "paged": paged if status == ProcessStatus.SUSPENDED else None,
        "input_problem": input_problem,
        "pages_field": PAGES_FIELD,
    }


@login_required
def process_detail(request: HttpRequest, pk) -> HttpResponse:
    process = visible_process(request, pk)
    context = {
        **process_context(request, process),
        "touched": extensions.touched(request.user, process),
    }
    return render(request, "orchestrator/process_detail.html", context)


@login_required
def process_fragment(request: HttpRequest, pk) -> HttpResponse:
    """The live part of the process page, re-fetched by static/js/live.js."""
    process = visible_process(request, pk)
    response = render(
        request, "orchestrator/fragments/process_live.html", process_context(request, process)
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def process_resume(request: HttpRequest, pk) -> HttpResponse:
    process = visible_process(request, pk)
    if not user_may(request.user, "orchestrator.resume_process", process):
        raise PermissionDenied("You may not resume this process.")
    detail = redirect("process-detail", pk=process.pk)
    if process.status != ProcessStatus.SUSPENDED:
        return call_service(request, detail, "Retrying the process.", services.resume_process,
                            process=process, user=request.user)
    paged, problem = input_form_for(process, request)
    if paged is None:
        messages.error(request, problem or "The process has no input form to fill in.")
        return detail
    try:
        paged.submit(request.POST)
    except Exception as error:  # the form's own code failed
        messages.error(request, form_failure(process, error, "The input form failed"))
        return detail
    if paged.complete and not paged.errors:
        try:
            services.resume_process(process=process, input_pages=paged.pages, user=request.user)
        except OrchestratorError as error:
            paged.errors.extend(add_service_errors(paged.form, error) or [error.message])
        else:
            messages.success(request, "Input submitted; the process goes on.")
            return detail
    context = process_context(request, process, paged=paged)
    status = 400 if paged.errors or _has_errors(paged.form) else 200
    return render(request, "orchestrator/process_detail.html", context, status=status)


@require_POST
@login_required
def process_abort(request: HttpRequest, pk) -> HttpResponse:
    process = visible_process(request, pk)
    detail = redirect("process-detail", pk=process.pk)
    return call_service(request, detail, "Process aborted.", services.abort_process,
                        process=process, user=request.user)


@require_POST
@login_required
def process_delete(request: HttpRequest, pk) -> HttpResponse:
    process = visible_process(request, pk)
    try:
        services.delete_process(process=process, user=request.user)
    except OrchestratorError as error:
        messages.error(request, error.message)
        return redirect("process-detail", pk=process.pk)
    messages.success(request, f"Deleted task run {pk}.")
    return redirect("process-list")


def call_service(request: HttpRequest, response: HttpResponse, success: str, action, **kwargs):
    """Run one service action; its refusal becomes a message (a permission one a 403)."""
    try:
        action(**kwargs)
    except OrchestratorError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, success)
    return response


# --- schedules ------------------------------------------------------------------------------


@login_required
def schedule_list(request: HttpRequest) -> HttpResponse:
    """Each periodic task: its schedule in words, when it last ran and how that ended (for
    a workflow schedule, the run it started), and when it runs next."""
    if not user_may(request.user, "django_celery_beat.view_periodictask"):
        raise PermissionDenied("You may not see the schedules.")
    tasks = list(
        PeriodicTask.objects.select_related("crontab", "interval", "solar", "clocked")
        .order_by("name")
    )
    outcomes = schedules.last_outcomes(tasks)
    started = [run.process_id for run in outcomes.values() if run.process_id]
    visible = set(
        selectors.processes_for_user(request.user).filter(pk__in=started)
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    rows = []
    for task in tasks:
        outcome = outcomes.get(task.name)
        rows.append({
            "task": task,
            "workflow": task.name.removeprefix(schedules.SCHEDULE_PREFIX)
            if task.name.startswith(schedules.SCHEDULE_PREFIX) else "",
            "schedule": schedules.describe_schedule(task),
            "cron": schedules.cron_of(task),
            "next_run": schedules.next_run_at(task, now),
            "due": schedules.is_due(task, now),  # "due now", not "in 1 second"
            "outcome": outcome,
            "process_visible": bool(outcome and outcome.process_id in visible),
        })
    return render(request, "orchestrator/schedule_list.html", {"rows": rows})


# --- workers --------------------------------------------------------------------------------


@login_required
def worker_list(request: HttpRequest) -> HttpResponse:
    """Every Celery worker that reported itself: alive, stopped or lost, on which queues,
    when last heard from (their own heartbeats: nothing is asked of the workers here)."""
    if not user_may(request.user, "orchestrator.view_workerheartbeat"):
        raise PermissionDenied("You may not see the workers.")
    rows = list(selectors.workers())
    alive_queues = {queue for row in rows if row.status == "alive" for queue in row.queues}
    context = {
        "workers": rows,
        "queues_without_worker": [
            queue.name for queue in settings.CELERY_TASK_QUEUES if queue.name not in alive_queues
        ],
        "heartbeat_seconds": settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS,
        "lost_after_seconds": settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS
        * selectors.MISSED_HEARTBEATS,
    }
    return render(request, "orchestrator/worker_list.html", context)


# --- the audit trail ------------------------------------------------------------------------

# Pages of the objects an audit row may name (by `object_type`); others are shown as text.
AUDIT_OBJECT_PAGES = {
    "orchestrator.process": "process-detail",
    "subscriptions.subscription": "subscription-detail",
}


class AuditPageFilter(AuditEventFilter):
    """The audit API's filters, with widgets for the page."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("since", "until"):
            self.filters[name].extra["widget"] = forms.DateTimeInput(
                attrs={"type": "datetime-local"}
            )
        self.filters["via"].extra["empty_label"] = "any"
        self.filters["action"].extra["widget"] = forms.TextInput(
            attrs={"placeholder": "process.abort, or process."}
        )


@login_required
def audit_list(request: HttpRequest) -> HttpResponse:
    """The audit trail: who did what outside the processes' own steps, when, from where."""
    events = selectors.audit_events_for_user(request.user)
    audit_filter = AuditPageFilter(request.GET or None, queryset=events)
    page = Paginator(audit_filter.rows(), PAGE_SIZE * 2).get_page(request.GET.get("page"))
    for event in page.object_list:
        name = AUDIT_OBJECT_PAGES.get(event.object_type)
        gone = event.action.endswith(".delete")
        event.url = reverse(name, args=[event.object_id]) if name and not gone else ""
    context = {"filter": audit_filter, "page": page, "events": page.object_list}
    status = 400 if audit_filter.errors else 200
    return render(request, "orchestrator/audit_list.html", context, status=status)
