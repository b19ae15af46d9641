"""``GET /metrics``: this process's metrics in Prometheus's text format (docs/operations.md).

Each daphne process serves its own (``realtime.metrics``: the default registry of
prometheus-client, no multiprocess mode), so a scraper scrapes every instance.

Access, from two settings (docs/configuration.md):
- neither ``METRICS_TOKEN`` nor ``METRICS_ALLOWED_ADDRESSES`` set: the endpoint is off, 404
  ``not_found`` like any unknown URL (metrics are never public by accident);
- ``METRICS_ALLOWED_ADDRESSES`` (IPs / CIDRs): the client address (``config.proxies``, so
  behind a trusted proxy the forwarded one) must be in it, else 403 ``forbidden``;
- ``METRICS_TOKEN``: ``Authorization: Bearer <token>`` must carry it, else 401
  ``unauthorized`` (with ``WWW-Authenticate: Bearer``), compared in constant time.
Both set: both must pass (the address first). Refusals are the API's JSON error shape; a
method other than GET / HEAD is 405 ``method_not_allowed``.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from config.api_errors import error
from config.proxies import parse_address, request_client_address
from realtime import metrics as _metrics  # noqa: F401  # Chorus's metrics, registered


def _refused(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse(error(code, message), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def refusal(request: HttpRequest) -> JsonResponse | None:
    """Why ``request`` may not read the metrics (a JSON error response), or None."""
    token: str = settings.METRICS_TOKEN
    allowed = settings.METRICS_ALLOWED_ADDRESSES
    if not token and not allowed:
        return _refused(404, "not_found", "Not found.")
    if allowed:
        address = parse_address(request_client_address(request))
        if address is None or not any(address in network for network in allowed):
            return _refused(403, "forbidden", "This address may not read the metrics.")
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), token.encode()
        ):
            return _refused(401, "unauthorized", "A valid metrics token is required.")
    return None


@csrf_exempt  # no state to protect; any method gets the JSON answers below
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The metrics, or the refusal (module docstring); only GET and HEAD (else 405)."""
    refused = refusal(request)
    if refused is not None:
        return refused
    if request.method not in ("GET", "HEAD"):
        response = _refused(405, "method_not_allowed", "Use GET.")
        response["Allow"] = "GET, HEAD"
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
