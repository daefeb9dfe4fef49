"""One error shape for every endpoint: `{"detail": message, <field>: [errors]}`."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from orchestrator.exceptions import OrchestratorError


def exception_handler(exc: Exception, context: dict) -> Response | None:
    if isinstance(exc, OrchestratorError):
        body = {**exc.field_errors, "detail": exc.message}  # a field named "detail" can't hide it
        return Response(body, status=exc.http_status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        )
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(exc, exceptions.ValidationError):
        if isinstance(data, list):
            data = {"detail": " ".join(str(item) for item in data)}
        elif isinstance(data, dict) and "detail" not in data:
            fields = ", ".join(sorted(data))
            data = {"detail": f"Invalid input: {fields}", **data}
        response.data = data
    elif isinstance(exc, (Http404, PermissionDenied)) and not isinstance(data, dict):
        response.data = {"detail": str(data)}
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        response.data = {"detail": response.data.get("detail", "Authentication required.")}
    return response
