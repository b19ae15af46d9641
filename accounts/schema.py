"""How the OpenAPI schema (drf-spectacular) describes the API's authentication: an
``Authorization: Bearer <access token>`` header (``accounts.authentication``). Registered by
being imported (``AccountsConfig.ready``)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /api/auth/token/` (or its refresh).",
        }
