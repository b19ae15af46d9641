"""Scopes: each server-API view names the one scope its key must hold (``required_scope``)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from .models import ApiKey


class HasScope(BasePermission):
    """An API key authenticated the request and holds the view's ``required_scope``. No key:
    401 ``auth_required``; a key without the scope: 403 ``missing_scope``."""

    code = "missing_scope"

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return False  # DRF answers 401 auth_required (no authenticator succeeded)
        scope = view.required_scope
        self.message = f"This API key lacks the '{scope}' scope."
        return scope in api_key.scopes
