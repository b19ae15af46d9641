"""One error shape for the whole HTTP API: ``{"error": {"code", "message", "fields"?}}``.

DRF exceptions keep their HTTP status; the ``code`` is the exception's code (``not_found``,
``forbidden``, ``token_expired`` …) and validation errors become ``bad_request`` with the
per-field messages under ``fields``. Django's own error pages (``handler400`` / ``404`` /
``500`` here) answer in this shape under ``/api/`` and with Django's pages elsewhere; a body
over ``MAX_REQUEST_BODY_BYTES`` (Django's ``RequestDataTooBig``) is a JSON 413 ``too_large``
wherever it is refused.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.views import defaults
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


def error(code: str, message: str) -> dict:
    """The API's error body."""
    return {"error": {"code": code, "message": message}}


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


class TooLarge(exceptions.APIException):
    status_code = 413
    default_code = "too_large"

    def __init__(self) -> None:
        super().__init__(too_large_message(settings.MAX_REQUEST_BODY_BYTES))


def exception_handler(exc, context):
    # Django's own exceptions carry no ``detail``: use DRF's equivalents (DRF maps them too).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = TooLarge()
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


def _api(request) -> bool:
    return request.path.startswith("/api/")


def bad_request(request, exception=None):
    """Django's 400 handler: JSON 413 for a body over the limit; the API's JSON shape under
    /api/, Django's page elsewhere."""
    if isinstance(exception, RequestDataTooBig):
        message = too_large_message(settings.MAX_REQUEST_BODY_BYTES)
        return JsonResponse(error("too_large", message), status=413)
    if _api(request):
        return JsonResponse(error("bad_request", "Bad request."), status=400)
    return defaults.bad_request(request, exception)


def not_found(request, exception=None):
    """Django's 404 handler: the API's JSON shape under /api/, Django's page elsewhere."""
    if _api(request):
        return JsonResponse(error("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Django's 500 handler: the API's JSON shape under /api/, Django's page elsewhere."""
    if _api(request):
        return JsonResponse(error("internal_error", "Internal server error."), status=500)
    return defaults.server_error(request)
