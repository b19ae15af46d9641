"""The demo page at ``/`` (docs/demo.md).

Served when ``DEMO_ENABLED`` (docs/configuration.md; on by default in the embedded setup),
else 404 as any unknown URL. The page's script and style are the front end built from
``demo/frontend/`` into ``demo/static/demo/`` (``make demo``, git-ignored); until they are built
the page says how to build them. The page speaks to Chorus only through its public surface
(REST, Socket.IO, y-websocket): this app imports nothing of the others.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.staticfiles import finders
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

#: The built bundle (vite's output name, demo/frontend/vite.config.js).
BUNDLE = "demo/demo.js"


def index(request: HttpRequest) -> HttpResponse:
    """GET ``/``: the demo page, or the instructions to build it; 404 when disabled."""
    if not settings.DEMO_ENABLED:
        raise Http404("the demo is disabled (DEMO_ENABLED)")
    built = finders.find(BUNDLE) is not None
    return render(request, "demo/index.html", {"built": built})
