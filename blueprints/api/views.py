"""The blueprint API (DESIGN §8): thin views over `blueprints.selectors` and
`blueprints.services`.

Every list and object comes from a `*_for_user` selector (what the user may not view is
never listed and is a 404 by id); every write goes through a service, which checks the
permission (403) and the rules (400 naming the field and rule, 409 for the state).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model, QuerySet
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from blueprints import exchange, selectors, services
from blueprints.api import serializers as s
from blueprints.models import Blueprint, Execution, Integration, Secret, StorageBackend, Template
from orchestrator.api.serializers import ApiErrorSerializer
from orchestrator.api.views import JSONOnlyMixin, Pagination
from orchestrator.exceptions import NotFound

ERRORS = {
    400: OpenApiResponse(ApiErrorSerializer, description="Invalid: names the field and rule"),
    403: OpenApiResponse(ApiErrorSerializer, description="Not allowed"),
    404: OpenApiResponse(ApiErrorSerializer, description="Not found"),
    409: OpenApiResponse(ApiErrorSerializer, description="Refused in the current state"),
}


def payload(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"detail": "The body must be a JSON object."})
    return request.data


class ServiceViewSet(
    JSONOnlyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """CRUD where reads come from a selector and writes from services; objects by id or
    name. Subclasses name the selector, the services and the serializers."""

    pagination_class = Pagination
    lookup_value_regex = "[^/]+"
    visible: Callable[[Any], QuerySet]
    save: Callable[..., Model]
    remove: Callable[..., None]
    instance_name: str  # the keyword the services take the object by
    what: str
    write_serializer_class: type

    def get_queryset(self) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return self.serializer_class.Meta.model.objects.none()
        return type(self).visible(self.request.user).order_by("name")

    def get_object(self) -> Model:
        return selectors.find(self.get_queryset(), self.kwargs["pk"], self.what)

    def written(self, instance: Model, code: int) -> Response:
        instance = self.get_queryset().get(pk=instance.pk)
        return Response(self.get_serializer(instance).data, status=code)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = type(self).save(user=request.user, data=payload(request))
        return self.written(instance, status.HTTP_201_CREATED)

    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = type(self).save(user=request.user, data=payload(request),
                                   **{self.instance_name: self.get_object()})
        return self.written(instance, status.HTTP_200_OK)

    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.update(request, *args, **kwargs)

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        type(self).remove(user=request.user, **{self.instance_name: self.get_object()})
        return Response(status=status.HTTP_204_NO_CONTENT)


def crud_schema(name: str, read: type, write: type):
    """The OpenAPI description of a ServiceViewSet's actions."""
    return extend_schema_view(
        list=extend_schema(summary=f"{name}s the user may view"),
        retrieve=extend_schema(summary=f"One {name.lower()}, by id or name",
                               responses={200: read, 404: ERRORS[404]}),
        create=extend_schema(summary=f"Create a {name.lower()}", request=write,
                             responses={201: read, **ERRORS}),
        update=extend_schema(summary=f"Change a {name.lower()} (the fields given)",
                             request=write, responses={200: read, **ERRORS}),
        partial_update=extend_schema(summary=f"Change a {name.lower()} (the fields given)",
                                     request=write, responses={200: read, **ERRORS}),
        destroy=extend_schema(summary=f"Delete a {name.lower()}",
                              responses={204: None, **ERRORS}),
    )


@crud_schema("Template", s.TemplateSerializer, s.TemplateWriteSerializer)
class TemplateViewSet(ServiceViewSet):
    queryset = Template.objects.all()
    serializer_class = s.TemplateSerializer
    write_serializer_class = s.TemplateWriteSerializer
    visible = staticmethod(selectors.templates_for_user)
    save = staticmethod(services.save_template)
    remove = staticmethod(services.delete_template)
    instance_name, what = "template", "template"


@crud_schema("Integration", s.IntegrationSerializer, s.IntegrationWriteSerializer)
class IntegrationViewSet(ServiceViewSet):
    queryset = Integration.objects.all()
    serializer_class = s.IntegrationSerializer
    visible = staticmethod(selectors.integrations_for_user)
    save = staticmethod(services.save_integration)
    remove = staticmethod(services.delete_integration)
    instance_name, what = "integration", "integration"


@crud_schema("Secret", s.SecretSerializer, s.SecretWriteSerializer)
class SecretViewSet(ServiceViewSet):
    queryset = Secret.objects.all()
    serializer_class = s.SecretSerializer
    visible = staticmethod(selectors.secrets_for_user)
    save = staticmethod(services.save_secret)
    remove = staticmethod(services.delete_secret)
    instance_name, what = "secret", "secret"


@crud_schema("Storage backend", s.StorageBackendSerializer, s.StorageBackendWriteSerializer)
class StorageBackendViewSet(ServiceViewSet):
    queryset = StorageBackend.objects.all()
    serializer_class = s.StorageBackendSerializer
    visible = staticmethod(selectors.storages_for_user)
    save = staticmethod(services.save_storage)
    remove = staticmethod(services.delete_storage)
    instance_name, what = "storage", "storage backend"


@crud_schema("Blueprint", s.BlueprintDetailSerializer, s.BlueprintWriteSerializer)
class BlueprintViewSet(ServiceViewSet):
    queryset = Blueprint.objects.all()
    serializer_class = s.BlueprintSerializer
    visible = staticmethod(selectors.blueprints_for_user)
    save = staticmethod(services.save_blueprint)
    remove = staticmethod(services.delete_blueprint)
    instance_name, what = "blueprint", "blueprint"

    def get_queryset(self) -> QuerySet:
        return selectors.blueprint_with_relations(super().get_queryset())

    def get_serializer_class(self):
        return s.BlueprintSerializer if self.action == "list" else s.BlueprintDetailSerializer

    @extend_schema(
        summary="The plan: levels, steps with resolved variables and provenance, problems",
        description="GET plans with the blueprint's defaults; POST with an execution's "
                    "payload plans with its overrides. Nothing is stored.",
        request=s.ExecutionWriteSerializer,
        responses={200: s.PlanSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get", "post"])
    def plan(self, request: Request, pk: str | None = None) -> Response:
        blueprint = self.get_object()
        if request.method == "GET":
            plan = selectors.blueprint_plan(blueprint)
        else:
            plan = services.plan_execution(user=request.user, blueprint=blueprint,
                                           data=payload(request))
        return Response(s.PlanSerializer(plan).data)

    @extend_schema(
        methods=["POST"],
        summary="Create an execution of the blueprint (pending)",
        request=s.ExecutionWriteSerializer,
        responses={201: s.ExecutionDetailSerializer, **ERRORS},
    )
    @extend_schema(methods=["GET"], summary="The blueprint's executions the user may view",
                   responses={200: s.ExecutionSerializer(many=True)})
    @action(detail=True, methods=["get", "post"])
    def executions(self, request: Request, pk: str | None = None) -> Response:
        blueprint = self.get_object()
        if request.method == "GET":
            rows = selectors.executions_for_user(request.user).filter(blueprint=blueprint)
            page = self.paginate_queryset(rows)
            return self.get_paginated_response(s.ExecutionSerializer(page, many=True).data)
        execution = services.create_execution(user=request.user, blueprint=blueprint,
                                              data=payload(request))
        return Response(s.ExecutionDetailSerializer(execution).data,
                        status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Export the blueprint and its templates (YAML or JSON)",
        parameters=[OpenApiParameter("as", str, enum=["yaml", "json"],
                                     description="yaml (default) or json")],
        responses={(200, "application/yaml"): OpenApiTypes.OBJECT,
                   (200, "application/json"): OpenApiTypes.OBJECT, 404: ERRORS[404]},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None) -> HttpResponse:
        blueprint = self.get_object()
        as_json = request.query_params.get("as", "yaml") == "json"
        text = exchange.dump(exchange.export_blueprint(blueprint), as_json=as_json)
        content_type = "application/json" if as_json else "application/yaml"
        response = HttpResponse(text, content_type=f"{content_type}; charset=utf-8")
        extension = "json" if as_json else "yaml"
        response["Content-Disposition"] = (
            f'attachment; filename="blueprint-{blueprint.pk}.{extension}"'
        )
        return response

    @extend_schema(
        summary="Import a blueprint with its templates (the document an export writes)",
        description="JSON, or YAML with Content-Type application/yaml. Validated like a save; "
                    "all or nothing.",
        request=OpenApiTypes.OBJECT,
        responses={201: s.BlueprintDetailSerializer, **ERRORS},
    )
    @action(detail=False, methods=["post"], url_path="import",
            parser_classes=[*JSONOnlyMixin.parser_classes, exchange.SafeYAMLParser])
    def import_(self, request: Request) -> Response:
        blueprint = exchange.import_document(request.data, user=request.user)
        return self.written(blueprint, status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(summary="Executions the user may view, newest first"),
    retrieve=extend_schema(summary="An execution with its steps by level",
                           responses={200: s.ExecutionDetailSerializer, 404: ERRORS[404]}),
    partial_update=extend_schema(
        summary="Change overrides and choices (while pending or in error)",
        request=s.ExecutionWriteSerializer,
        responses={200: s.ExecutionDetailSerializer, **ERRORS},
    ),
    destroy=extend_schema(summary="Delete the execution's record (admin)",
                          responses={204: None, **ERRORS}),
)
class ExecutionViewSet(
    JSONOnlyMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Execution.objects.all()
    serializer_class = s.ExecutionSerializer
    pagination_class = Pagination
    filterset_fields = ["blueprint", "status"]
    lookup_value_regex = "[^/]+"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self) -> QuerySet[Execution]:
        if getattr(self, "swagger_fake_view", False):
            return Execution.objects.none()
        return selectors.executions_for_user(self.request.user)

    def get_serializer_class(self):
        return s.ExecutionSerializer if self.action == "list" else s.ExecutionDetailSerializer

    def get_object(self) -> Execution:
        try:
            return selectors.visible_execution(self.request.user, self.kwargs["pk"])
        except NotFound as error:
            raise exceptions.NotFound(error.message) from None

    def detail_response(self, execution: Execution) -> Response:
        execution = self.get_queryset().get(pk=execution.pk)
        return Response(s.ExecutionDetailSerializer(execution).data)

    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        execution = services.update_execution(user=request.user, execution=self.get_object(),
                                              data=payload(request))
        return self.detail_response(execution)

    def destroy(self, request: Request, pk: str | None = None) -> Response:
        services.delete_execution(user=request.user, execution=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Execute: a pending execution, or again one that ended in error",
        description="409, saying why, when the execution is neither pending nor in error.",
        request=None,
        responses={200: s.ExecutionDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def execute(self, request: Request, pk: str | None = None) -> Response:
        execution = services.execute_execution(user=request.user, execution=self.get_object())
        return self.detail_response(execution)

    @extend_schema(
        summary="Tear down: terminate the resources it created, in reverse order (admin)",
        request=None,
        responses={200: s.ExecutionDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def teardown(self, request: Request, pk: str | None = None) -> Response:
        execution = services.teardown_execution(user=request.user, execution=self.get_object())
        return self.detail_response(execution)
