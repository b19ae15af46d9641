"""How the OpenAPI schema (drf-spectacular) describes the server API's authentication: an HTTP
bearer scheme carrying an API key. Registered on import (``ServerApiConfig.ready``)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "serverapi.authentication.ApiKeyAuthentication"
    name = "serverApiKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A server-API key (docs/server-api.md), in the header only.",
        }
