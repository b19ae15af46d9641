"""The OpenAPI schema's shared parts (drf-spectacular): the error body, the errors every
operation can answer, and the building blocks views use to describe the rest.

``add_error_responses`` (a postprocessing hook, ``SPECTACULAR_SETTINGS``) gives every operation
the error responses that come from the framework rather than from the view, by what the
operation has: authentication (401, 403), path parameters (404), a request body or query
parameters (400), a request body (413, 415). A response a view declares itself (``errors(…)``
in its ``extend_schema``) is kept as it is. So an endpoint added later is described with these
errors without anyone listing them. The body is ``config.api_errors``' shape:
``{"error": {"code", "message", "fields"?}}``.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse

#: The ``code``s of the error bodies of the user API, by HTTP status, as docs/protocol.md §10
#: lists them (each response's description names its own; other APIs add theirs).
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request",),
    401: (
        "auth_required",
        "unauthorized",
        "invalid_token",
        "token_expired",
        "token_revoked",
        "invalid_credentials",
    ),
    403: ("forbidden",),
    404: ("not_found",),
    405: ("method_not_allowed",),
    406: ("not_acceptable",),
    409: ("conflict",),
    413: ("too_large",),
    415: ("unsupported_media_type",),
    429: ("rate_limited",),
    500: ("internal_error",),
}

#: What each status means here, as the response's description.
_MEANING = {
    400: "The request is not valid (per-field messages under `fields`); nothing changed.",
    401: "No, or a refused, credential.",
    403: "The caller may not do this.",
    404: "No such resource, or one the caller may not see.",
    405: "Method not allowed.",
    406: "Not acceptable.",
    409: "The request conflicts with the current state; nothing changed.",
    413: "The request body is over `MAX_REQUEST_BODY_BYTES`.",
    415: "The body is not `application/json`.",
    429: "Too many requests: retry after `Retry-After` seconds.",
    500: "Internal server error.",
}

ERROR_SCHEMA_NAME = "Error"
_ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA_NAME}"}
_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error of the API (config/api_errors.py).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "What went wrong; each response lists its codes.",
                },
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "400 only: messages per field of the request.",
                },
            },
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def _description(status: int) -> str:
    codes = ", ".join(f"`{code}`" for code in ERROR_CODES[status])
    return f"{_MEANING[status]} Code: {codes}."


def _error_response(status: int) -> dict[str, Any]:
    return {
        "description": _description(status),
        "content": {"application/json": {"schema": _ERROR_REF}},
    }


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses a view declares beyond the hook's (``extend_schema(responses=…)``);
    the hook points their body at the ``Error`` component."""
    return {
        status: OpenApiResponse(OpenApiTypes.OBJECT, description=_description(status))
        for status in statuses
    }


class ServedSchemaGenerator(SchemaGenerator):
    """The generator of ``/api/schema/``: the schema depends on the code alone, so it is made
    on the first request of a process and then served as it is (an anonymous request costs no
    generation). ``manage.py spectacular`` uses drf-spectacular's own generator."""

    _made: ClassVar[dict[tuple[bool, str | None], dict]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def get_schema(self, request: Any = None, public: bool = False) -> dict:
        key = (public, self.api_version)
        with self._lock:
            if key not in self._made:
                self._made[key] = super().get_schema(request, public)
            return self._made[key]


_BODY_METHODS = {"post", "put", "patch", "delete"}


def add_error_responses(result: dict, generator: Any, request: Any, public: bool) -> dict:
    """Postprocessing hook: the ``Error`` component and the framework's errors of every
    operation (module doc)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_SCHEMA_NAME] = _ERROR_SCHEMA
    # Every error body is this one component: a view's own (``errors``, or a serializer of the
    # same shape) is pointed at it.
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _BODY_METHODS | {"get", "head", "options"}:
                continue
            statuses = set()
            parameters = operation.get("parameters", [])
            if any(p.get("in") == "path" for p in parameters):
                statuses.add(404)
            if "requestBody" in operation:
                statuses |= {400, 413, 415}
            if any(p.get("in") == "query" for p in parameters):
                statuses.add(400)
            if any(requirement for requirement in operation.get("security", [])):
                statuses |= {401, 403}
            responses = operation.setdefault("responses", {})
            for status in sorted(statuses):
                responses.setdefault(str(status), _error_response(status))
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
            operation["responses"] = dict(sorted(responses.items()))
    return result
