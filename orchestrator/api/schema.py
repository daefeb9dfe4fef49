"""The OpenAPI schema documents every answer the API can give (drf-spectacular hook).

Some answers come from machinery every operation shares rather than from its view: a path
parameter naming nothing is a 404; a malformed query parameter, filter, header or body is a
400 (`RefuseUnreadableRequests`, the strict filters and pagination, the JSON parser); a
request without valid credentials is a 401; a body over the size limit is a 413, one of
another media type a 415. Each is the
one error shape (`ApiError`). `document_shared_errors` adds them to every operation that can
give them and does not document them itself, so the schema and the answers agree (the
API fuzzing test, tests/unit/test_api_fuzz.py, holds them to it). It also says what every
query parameter does with an empty value (`?status=`): nothing, as if it were not given.
"""

from __future__ import annotations

from typing import Any

METHODS = ("get", "put", "post", "patch", "delete")
API_ERROR = {"$ref": "#/components/schemas/ApiError"}


def error(description: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": API_ERROR}}, "description": description}


def shared_errors(path: str, operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    errors = {"400": error("Invalid input or parameters")}
    if any(operation.get("security") or []):  # not the callback routes and the token route
        errors["401"] = error("Not logged in, or the credentials are not valid")
    if "{" in path:
        errors["404"] = error("Not found")
    if "requestBody" in operation:
        errors["413"] = error("The request body is too large")
        errors["415"] = error("The request body is not of a media type the operation reads")
    return errors


def document_shared_errors(result: dict[str, Any], generator: Any, request: Any,
                           public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS entry: the shared answers, where an operation can give them, and
    empty query parameters allowed."""
    for path, item in result.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query":  # `?status=` filters nothing, as if not given
                    parameter.setdefault("allowEmptyValue", True)
            responses = operation.setdefault("responses", {})
            for code, response in shared_errors(path, operation).items():
                responses.setdefault(code, response)
    return result
