"""One error shape for the whole HTTP API: ``{"error": {"code", "message", "fields"?}}``.

DRF exceptions keep their HTTP status; the ``code`` is the exception's code (``not_found``,
``forbidden``, ``token_expired`` …) and validation errors become ``bad_request`` with the
per-field messages under ``fields``.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions
from rest_framework.views import exception_handler as drf_exception_handler

#: DRF's generic codes -> the protocol's codes. Any other code an exception carries (for
#: example ``token_expired``) is already specific and is passed through unchanged.
_GENERIC_CODES = {
    "invalid": "bad_request",
    "parse_error": "bad_request",
    "error": "bad_request",
    "not_authenticated": "auth_required",
    "authentication_failed": "unauthorized",
    "permission_denied": "forbidden",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "not_acceptable": "not_acceptable",
    "unsupported_media_type": "unsupported_media_type",
    "throttled": "rate_limited",
}


def exception_handler(exc, context):
    # Django's own exceptions carry no ``detail``: use DRF's equivalents (DRF maps them too).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        error = {
            "code": "bad_request",
            "message": "The request is not valid.",
            "fields": response.data,
        }
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        error = {"code": _GENERIC_CODES.get(code, code), "message": str(exc.detail)}
    response.data = {"error": error}
    return response


class Conflict(exceptions.APIException):
    status_code = 409
    default_detail = "The request conflicts with the current state."
    default_code = "conflict"


def not_found(request, exception=None):
    """Django's 404 handler: the API's JSON shape under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)
