"""The process/workflow REST API (DESIGN §8): thin views over selectors and services.

Every view here needs an authenticated user (the project default) except the callback
routes, which are guarded by their one-use token. Visibility comes from the selectors
(a process the user may not view is a 404), actions are checked by the services (403),
and the engine's errors map to their status codes in `orchestrator.api.exceptions`.
"""

from __future__ import annotations

import io
import logging
import uuid
from typing import Any

from axes.helpers import get_lockout_message
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db.models import Prefetch, QuerySet
from django_celery_beat.models import PeriodicTask
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, generics, mixins, status, viewsets
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.decorators import action
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from orchestrator import registry, schedules, selectors, services
from orchestrator.api.filters import (
    AuditEventFilter,
    ProcessFilter,
    ProcessLogFilter,
    WorkerFilter,
    WorkflowFilter,
)
from orchestrator.api.serializers import (
    ApiErrorSerializer,
    AuditEventSerializer,
    BatchStartResultSerializer,
    BatchStartSerializer,
    CallbackProgressSerializer,
    DetailSerializer,
    EngineSerializer,
    InputFormErrorSerializer,
    ProcessDetailSerializer,
    ProcessLogSerializer,
    ProcessResumeSerializer,
    ProcessSerializer,
    ProcessStartSerializer,
    ScheduleSerializer,
    WorkerSerializer,
    WorkflowDetailSerializer,
    WorkflowSerializer,
    check_idempotency_key,
)
from orchestrator.auth import LockedOut
from orchestrator.exceptions import FormInvalid, NotFound
from orchestrator.forms import form_json_schema, validate_pages
from orchestrator.models import (
    AuditEvent,
    Process,
    ProcessLog,
    ProcessStatus,
    ProcessTag,
    WorkerHeartbeat,
    Workflow,
)
from orchestrator.pagination import COUNT_CAP, count_up_to, exact_bound
from orchestrator.permissions import user_may
from orchestrator.redaction import redacting, redactor_for
from orchestrator.safejson import bad_string, json_problem
from orchestrator.tokens import issue_token

logger = logging.getLogger(__name__)

# --- request parsing ----------------------------------------------------------------------


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


class SafeJSONParser(JSONParser):
    """DRF's JSON parser with the limits hostile input needs.

    The body size is capped at DATA_UPLOAD_MAX_MEMORY_SIZE (413) even where DRF hands the
    parser a raw stream (older DRF releases bypass Django's check that way). Nesting deep
    enough to exhaust the decoder's stack, strings the database or the renderer cannot take
    and non-finite numbers (`NaN`, `1e400`) are a 400 (`orchestrator.safejson`).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise RequestTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from None
        problem = json_problem(data)
        if problem:
            raise exceptions.ParseError(f"JSON parse error - {problem}")
        return data


class JSONOnlyMixin:
    """JSON bodies only, through SafeJSONParser; a body over the size limit is a JSON 413."""

    parser_classes = [SafeJSONParser]

    def handle_exception(self, exc: Exception) -> Response:
        # Django raises RequestDataTooBig when DRF reads `request.body`; left alone it would
        # become Django's HTML 400 page instead of the API's error shape.
        if isinstance(exc, RequestDataTooBig):
            exc = RequestTooLarge()
        return super().handle_exception(exc)


class Pagination(LimitOffsetPagination):
    """The default page size from settings; `?limit=` can ask for more, up to a bound.

    `limit` and `offset` are read strictly, as filters are: a value that is not a whole
    number in range is a 400 naming it, never silently the default page.
    """

    max_limit = 500
    max_offset = 2**31 - 1

    def whole_number(self, request: Request, name: str, minimum: int, default: int | None):
        raw = request.query_params.get(name, "")
        if raw == "":
            return default
        if not (raw.isascii() and raw.isdigit() and minimum <= int(raw) <= self.max_offset):
            raise exceptions.ValidationError(
                {name: [f"Must be a whole number from {minimum} to {self.max_offset}."]}
            )
        return int(raw)

    def get_limit(self, request: Request) -> int | None:
        limit = self.whole_number(request, self.limit_query_param, 1, self.default_limit)
        return min(limit, self.max_limit) if limit is not None else None

    def get_offset(self, request: Request) -> int:
        return self.whole_number(request, self.offset_query_param, 0, 0)

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        bounds = {self.limit_query_param: 1, self.offset_query_param: 0}
        for parameter in parameters:
            parameter["schema"].update(minimum=bounds[parameter["name"]], maximum=self.max_offset)
        return parameters


class CappedCountPagination(Pagination):
    """Pagination of the big lists: `count` is exact up to COUNT_CAP rows or the end of the
    requested page, whichever is further (orchestrator.pagination); beyond, `count_exact` is
    false and `count` is a lower bound (there are at least that many). `next` is right either
    way, so clients that follow it page through everything."""

    def get_count(self, queryset: QuerySet) -> int:
        self.exact_up_to = exact_bound(self.get_offset(self.request) + self.limit)
        return count_up_to(queryset, self.exact_up_to + 1)

    def get_paginated_response(self, data: Any) -> Response:
        response = super().get_paginated_response(data)
        response.data = {
            "count": self.count,
            "count_exact": self.count <= self.exact_up_to,
            **{key: value for key, value in response.data.items() if key != "count"},
        }
        return response

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"]["count"]["description"] = (
            f"Exact when `count_exact` is true (up to {COUNT_CAP} rows, or to the end of the "
            "requested page); else a lower bound: there are at least that many."
        )
        paginated["properties"]["count_exact"] = {"type": "boolean"}
        paginated["required"] = [*paginated["required"], "count_exact"]
        return paginated


# --- helpers ------------------------------------------------------------------------------


def parse_process_id(value: Any) -> uuid.UUID:
    """A process id from the URL; anything that is not a UUID is simply not found."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise exceptions.NotFound("No such process.") from None


def first_page_schema(workflow_name: str, user) -> dict[str, Any] | None:
    """JSON Schema of a workflow's first input page as `user` sees it (None without input
    or without code)."""
    definition = registry.get_definition(workflow_name)
    if definition is None:
        return None
    try:
        spec = definition.load()
        result = validate_pages(spec.initial_input_form, [], state={}, user=user)
        return form_json_schema(result.next_form, user=user)
    except Exception:
        logger.exception("could not build the input form of workflow %r", workflow_name)
        return None


def suspended_form_schema(process: Process, user) -> dict[str, Any] | None:
    """JSON Schema of the input page a suspended process waits for, as `user` sees it."""
    if process.status != ProcessStatus.SUSPENDED:
        return None
    try:
        form_spec = selectors.current_input_form(process)
        if form_spec is None:
            return None
        result = validate_pages(
            form_spec, [], state=selectors.input_state(process), user=user
        )
        return form_json_schema(result.next_form, user=user)
    except Exception:
        with redacting(redactor_for(process)):  # the form saw the run's secrets
            logger.exception("could not build the input form of process %s", process.pk)
        return None


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        "Optional, 1 to 255 printable ASCII characters. The same key and body again (same "
        "user, within ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS) answer 201 with the run the first "
        "request started, marked `Idempotent-Replayed: true`; the key with another body is "
        "a 422."
    ),
)


def idempotency_key(request: Request) -> str | None:
    """The request's `Idempotency-Key` header (None without one); a malformed one is a 400."""
    key = request.headers.get("Idempotency-Key")
    return None if key is None else check_idempotency_key(key, "The Idempotency-Key header")


def start_arguments(data: dict[str, Any]) -> dict[str, Any]:
    """`start_process`'s arguments for a validated start request (ProcessStartSerializer)."""
    return {
        "workflow_name": data["workflow"],
        "input_pages": data["input"],
        "tags": data["tags"],
        "subscription": data.get("subscription"),
        "product": data.get("product"),
    }


def with_list_relations(queryset: QuerySet[Process]) -> QuerySet[Process]:
    """What the serializers read, fetched up front: constant queries per request."""
    return queryset.select_related("workflow", "created_by").prefetch_related(
        Prefetch("tag_rows", queryset=ProcessTag.objects.order_by("pk"))
    )


ERRORS = {
    400: OpenApiResponse(InputFormErrorSerializer, description="Invalid input"),
    403: OpenApiResponse(ApiErrorSerializer, description="Not allowed"),
    404: OpenApiResponse(ApiErrorSerializer, description="Not found"),
    409: OpenApiResponse(ApiErrorSerializer, description="Conflict with the process's state"),
    410: OpenApiResponse(ApiErrorSerializer, description="The callback token has expired"),
}


# --- workflows ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="The workflow catalogue the user may view"),
    retrieve=extend_schema(
        summary="One workflow with the JSON Schema of its first input page",
        responses={200: WorkflowDetailSerializer, 404: ERRORS[404]},
    ),
)
class WorkflowViewSet(JSONOnlyMixin, viewsets.ReadOnlyModelViewSet):
    pagination_class = Pagination
    queryset = Workflow.objects.all()
    serializer_class = WorkflowSerializer
    filterset_class = WorkflowFilter
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> QuerySet[Workflow]:
        if getattr(self, "swagger_fake_view", False):
            return Workflow.objects.none()
        return selectors.workflows_for_user(self.request.user).order_by("name")

    def get_object(self) -> Workflow:
        name = self.kwargs["name"]
        workflow = None
        if not bad_string(name):
            workflow = self.get_queryset().filter(name=name).first()
        if workflow is None:
            raise NotFound(f"Unknown workflow {name!r}")
        return workflow

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        workflow = self.get_object()
        context = {
            **self.get_serializer_context(),
            "form": first_page_schema(workflow.name, request.user),
        }
        return Response(WorkflowDetailSerializer(workflow, context=context).data)


# --- processes ----------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(summary="Processes the user may view, newest first"),
    retrieve=extend_schema(
        summary="A process with its state, step log and, while suspended, its form",
        responses={200: ProcessDetailSerializer, 404: ERRORS[404]},
    ),
    create=extend_schema(
        summary="Start a workflow",
        request=ProcessStartSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: ProcessDetailSerializer,
            **ERRORS,
            412: OpenApiResponse(ApiErrorSerializer, description="Refused by a run predicate"),
            422: OpenApiResponse(
                ApiErrorSerializer, description="Idempotency-Key reused with another body"
            ),
        },
    ),
    destroy=extend_schema(
        summary="Delete a task run (workflow runs are kept for audit: 409)",
        responses={204: None, 403: ERRORS[403], 404: ERRORS[404], 409: ERRORS[409]},
    ),
)
class ProcessViewSet(
    JSONOnlyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Process.objects.all()
    serializer_class = ProcessSerializer
    pagination_class = Pagination
    filterset_class = ProcessFilter
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> QuerySet[Process]:
        if getattr(self, "swagger_fake_view", False):
            return Process.objects.none()
        visible = selectors.processes_for_user(self.request.user)
        visible = selectors.with_parent_visibility(visible, self.request.user)
        return with_list_relations(visible).order_by("-started_at", "-pk")

    def get_serializer_class(self):
        if self.action == "create":
            return ProcessStartSerializer
        if self.action == "resume":
            return ProcessResumeSerializer
        if self.action == "list":
            return ProcessSerializer
        return ProcessDetailSerializer

    def get_object(self) -> Process:
        process_id = parse_process_id(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        process = self.get_queryset().filter(pk=process_id).first()
        if process is None:
            raise exceptions.NotFound("No such process.")
        return process

    def detail_response(
        self, process: Process, code: int = status.HTTP_200_OK, reload: bool = True
    ) -> Response:
        if reload:
            # Read back what the services wrote, with the relations the serializer reads.
            process = self.get_queryset().get(pk=process.pk)
        context = {
            **self.get_serializer_context(),
            "steps": selectors.process_step_diffs(process),
            "form": suspended_form_schema(process, self.request.user),
        }
        return Response(ProcessDetailSerializer(process, context=context).data, status=code)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.detail_response(self.get_object(), reload=False)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ProcessStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        start = {**start_arguments(serializer.validated_data), "user": request.user}
        key = idempotency_key(request)
        if key is None:
            process, replayed = services.start_process(**start), False
        else:
            process, replayed = services.start_process_once(
                idempotency_key=key, fingerprint=services.request_fingerprint(request.data),
                **start,
            )
        response = self.detail_response(process, status.HTTP_201_CREATED)
        if replayed:
            response["Idempotent-Replayed"] = "true"
        return response

    @extend_schema(
        summary="Start many runs in one transaction (all or none)",
        description=(
            "Each run is checked as `POST /api/processes/` checks one; a refusal names the "
            "run (`runs[3]: ...`, its field errors under `runs` and its index) and starts "
            "none. A run beyond a full `cancel_new` concurrency limit is stored `cancelled` "
            "while the others start. Idempotency keys go per run (`idempotency_key`)."
        ),
        request=BatchStartSerializer,
        responses={
            201: BatchStartResultSerializer,
            **ERRORS,
            412: OpenApiResponse(ApiErrorSerializer, description="Refused by a run predicate"),
            422: OpenApiResponse(
                ApiErrorSerializer, description="An idempotency key reused with another run"
            ),
        },
    )
    @action(detail=False, methods=["post"])
    def batch(self, request: Request) -> Response:
        if "Idempotency-Key" in request.headers:
            message = "A batch takes an idempotency_key per run, not an Idempotency-Key header."
            raise FormInvalid(message, {"idempotency_key": [message]})
        serializer = BatchStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        runs = [
            services.BatchRun(
                services.StartRequest.of(**start_arguments(run)),
                idempotency_key=run.get("idempotency_key", ""),
                fingerprint=services.request_fingerprint(sent),
            )
            for run, sent in zip(serializer.validated_data["runs"], request.data["runs"],
                                 strict=True)
        ]
        started = services.start_processes(runs=runs, user=request.user)
        stored = self.get_queryset().in_bulk([process.pk for process, _ in started])
        context = {
            **self.get_serializer_context(),
            "replayed": {process.pk for process, replayed in started if replayed},
        }
        answer = BatchStartResultSerializer(
            {"runs": [stored[process.pk] for process, _ in started]}, context=context
        )
        return Response(answer.data, status=status.HTTP_201_CREATED)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        services.delete_process(process=self.get_object(), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Submit input to a suspended process, or retry a failed/waiting one",
        request=ProcessResumeSerializer,
        responses={200: ProcessDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str | None = None) -> Response:
        process = self.get_object()
        serializer = ProcessResumeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        process = services.resume_process(
            process=process, input_pages=serializer.validated_data["input"], user=request.user
        )
        return self.detail_response(process)

    @extend_schema(
        summary="Abort a process (it is never compensated)",
        request=None,
        responses={
            200: ProcessDetailSerializer,
            403: ERRORS[403],
            404: ERRORS[404],
            409: ERRORS[409],
        },
    )
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str | None = None) -> Response:
        process = services.abort_process(process=self.get_object(), user=request.user)
        return self.detail_response(process)


class ProcessLogView(JSONOnlyMixin, generics.ListAPIView):
    """`GET /api/processes/{id}/logs/`: whoever may view the process may read its log."""

    serializer_class = ProcessLogSerializer
    pagination_class = Pagination
    filterset_class = ProcessLogFilter
    queryset = ProcessLog.objects.none()

    @extend_schema(
        summary="The run log: what the process's steps and tasks logged (and printed)",
        description="Oldest first. Follow a running process by asking again with "
                    "`after` = the `id` of the last line you have. Secrets are redacted; "
                    "a log cut at its limit ends with a line saying so.",
        responses={200: ProcessLogSerializer(many=True), 400: ERRORS[400], 404: ERRORS[404]},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[ProcessLog]:
        if getattr(self, "swagger_fake_view", False):
            return ProcessLog.objects.none()
        process_id = parse_process_id(self.kwargs["process_id"])
        process = selectors.processes_for_user(self.request.user).filter(pk=process_id).first()
        if process is None:
            raise exceptions.NotFound("No such process.")
        return selectors.process_log_lines(process)


# --- API tokens -------------------------------------------------------------------------


class ApiTokenView(APIView):
    """Username and password (JSON or a form) → a new API token, shown this once (only its
    digest is stored: orchestrator.tokens). Throttled like the login page: a locked-out
    account or client address gets 429 with the lockout message, never a token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]
    serializer_class = AuthTokenSerializer

    @extend_schema(
        summary="Issue an API token (send it as `Authorization: Token <token>`)",
        request=AuthTokenSerializer,
        responses={
            200: AuthTokenSerializer,
            400: ERRORS[400],
            429: OpenApiResponse(ApiErrorSerializer, description="Locked out for a while"),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = AuthTokenSerializer(data=request.data, context={"request": request})
        try:
            serializer.is_valid(raise_exception=True)
        except exceptions.ValidationError:
            # Throttled like the login page: django-axes flags the DRF request it was handed.
            if getattr(request, "axes_locked_out", False):
                raise LockedOut(str(get_lockout_message())) from None
            raise
        return Response({"token": issue_token(serializer.validated_data["user"])})


# --- callbacks (no login: the one-use token is the guard) ---------------------------------


class CallbackView(JSONOnlyMixin, APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The callback route of a callback step",
        description="The JSON object body lands in the process state as `callback_result`.",
        request=OpenApiTypes.OBJECT,
        responses={200: DetailSerializer, 400: ERRORS[400], 404: ERRORS[404], 410: ERRORS[410]},
        auth=[],
    )
    def post(self, request: Request, process_id: str, token: str) -> Response:
        services.handle_callback(
            process_id=parse_process_id(process_id), token=token, body=request.data
        )
        return Response({"detail": "accepted"})


class CallbackProgressView(JSONOnlyMixin, APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="Report progress of the external job a callback step waits for",
        request=CallbackProgressSerializer,
        responses={200: DetailSerializer, 400: ERRORS[400], 404: ERRORS[404], 410: ERRORS[410]},
        auth=[],
    )
    def post(self, request: Request, process_id: str, token: str) -> Response:
        message = request.data.get("message") if isinstance(request.data, dict) else None
        services.record_callback_progress(
            process_id=parse_process_id(process_id), token=token, message=message
        )
        return Response({"detail": "recorded"})


# --- engine and schedules -----------------------------------------------------------------


class CanViewSchedules(BasePermission):
    message = "You do not have the permission 'django_celery_beat.view_periodictask' for this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return user_may(request.user, "django_celery_beat.view_periodictask")


class EngineView(JSONOnlyMixin, APIView):
    serializer_class = EngineSerializer

    @extend_schema(summary="Whether the engine is paused", responses={200: EngineSerializer})
    def get(self, request: Request) -> Response:
        return Response({"paused": selectors.engine_is_paused()})

    @extend_schema(
        summary="Pause or unpause the engine (needs orchestrator.pause_engine)",
        request=EngineSerializer,
        responses={200: EngineSerializer, 400: ERRORS[400], 403: ERRORS[403]},
    )
    def post(self, request: Request) -> Response:
        serializer = EngineSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        engine = services.set_engine_paused(
            paused=serializer.validated_data["paused"], user=request.user
        )
        return Response({"paused": engine.paused})


@extend_schema_view(
    list=extend_schema(summary="Cron schedules and periodic engine tasks"),
    retrieve=extend_schema(summary="One periodic task"),
)
class ScheduleViewSet(JSONOnlyMixin, viewsets.ReadOnlyModelViewSet):
    """The same permission as the schedules page: `django_celery_beat.view_periodictask`."""

    permission_classes = [IsAuthenticated, CanViewSchedules]
    pagination_class = Pagination
    queryset = PeriodicTask.objects.select_related(
        "crontab", "interval", "solar", "clocked"
    ).order_by("name")
    serializer_class = ScheduleSerializer
    filterset_fields = ["enabled"]

    def get_serializer_context(self) -> dict[str, Any]:
        """The last outcome of every schedule, and which started runs the user may see,
        read once per request (there are few schedules)."""
        context = super().get_serializer_context()
        if getattr(self, "swagger_fake_view", False):
            return context
        outcomes = schedules.last_outcomes(list(self.get_queryset()))
        started = [run.process_id for run in outcomes.values() if run.process_id]
        context["outcomes"] = outcomes
        context["visible_processes"] = set(
            selectors.processes_for_user(self.request.user).filter(pk__in=started)
            .values_list("pk", flat=True)
        )
        return context


# --- workers ------------------------------------------------------------------------------


class CanViewWorkers(BasePermission):
    message = "You do not have the permission 'orchestrator.view_workerheartbeat' for this."

    def has_permission(self, request: Request, view: Any) -> bool:
        return user_may(request.user, "orchestrator.view_workerheartbeat")


@extend_schema_view(
    list=extend_schema(
        summary="Celery workers: alive, stopped or lost, their queues, when last heard from",
        responses={200: WorkerSerializer(many=True), 400: ERRORS[400], 403: ERRORS[403]},
    ),
)
class WorkerViewSet(JSONOnlyMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The same permission as the workers page: `orchestrator.view_workerheartbeat`."""

    permission_classes = [IsAuthenticated, CanViewWorkers]
    pagination_class = Pagination
    serializer_class = WorkerSerializer
    filterset_class = WorkerFilter

    def get_queryset(self) -> QuerySet[WorkerHeartbeat]:
        return selectors.workers()


# --- the audit trail ----------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(
        summary="The audit trail, newest first (admins and orchestrator.view_auditevent)",
        responses={200: AuditEventSerializer(many=True), 400: ERRORS[400], 403: ERRORS[403]},
    ),
    retrieve=extend_schema(
        summary="One audit event",
        responses={200: AuditEventSerializer, 403: ERRORS[403], 404: ERRORS[404]},
    ),
)
class AuditEventViewSet(JSONOnlyMixin, viewsets.ReadOnlyModelViewSet):
    queryset = AuditEvent.objects.all()
    serializer_class = AuditEventSerializer
    pagination_class = Pagination
    filterset_class = AuditEventFilter
    lookup_value_regex = "[0-9]{1,18}"

    def get_queryset(self) -> QuerySet[AuditEvent]:
        if getattr(self, "swagger_fake_view", False):
            return AuditEvent.objects.none()
        return selectors.audit_events_for_user(self.request.user)
