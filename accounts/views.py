"""The auth API: password login, refresh rotation, logout, revoke-all, WebSocket connection
tickets, and the caller."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from config.openapi import errors
from config.proxies import request_client_address

from . import tickets
from .models import Role
from .serializers import (
    LoginSerializer,
    LogoutSerializer,
    MeSerializer,
    RefreshSerializer,
    RevokedSerializer,
    TicketSerializer,
    TokenPairSerializer,
)
from .tokens import (
    TokenRejected,
    issue_token_pair,
    own_refresh_token,
    refresh_token_pair,
    revoke_access_token,
    revoke_all_tokens,
)


class LoginThrottle(SimpleRateThrottle):
    """Password attempts per client address and username (``LOGIN_THROTTLE_RATE``). The
    address is ``config.proxies``' (``X-Forwarded-For`` only from ``TRUSTED_PROXIES``), not
    DRF's ``get_ident``, which believes the header from anyone while ``NUM_PROXIES`` is unset."""

    scope = "login"

    def get_rate(self):
        return settings.LOGIN_THROTTLE_RATE

    def get_ident(self, request) -> str:
        return request_client_address(request)

    def get_cache_key(self, request, view):
        data = request.data
        username = data.get("username", "") if isinstance(data, dict) else ""
        return f"chorus:throttle:login:{self.get_ident(request)}:{str(username)[:150].lower()}"


def _raise(rejected: TokenRejected):
    if rejected.status == 403:
        raise exceptions.PermissionDenied(rejected.message, code=rejected.code)
    raise exceptions.AuthenticationFailed(rejected.message, code=rejected.code)


class PublicAuthView(APIView):
    """An endpoint open to anonymous callers that still answers 401 (not 403) on refusal."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenView(PublicAuthView):
    """POST {username, password} → {access, refresh, expires_at, user}."""

    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=LoginSerializer,
        responses={200: TokenPairSerializer, **errors(401, 403, 429)},
    )
    def post(self, request):
        body = LoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
        )
        if user is None:
            raise exceptions.AuthenticationFailed(
                "Wrong username or password.", code="invalid_credentials"
            )
        if user.role == Role.PENDING:
            raise exceptions.PermissionDenied("Account is pending approval.", code="forbidden")
        return Response(issue_token_pair(user))


class TokenRefreshView(PublicAuthView):
    """POST {refresh} → a new pair; the presented refresh token is blacklisted."""

    @extend_schema(
        request=RefreshSerializer, responses={200: TokenPairSerializer, **errors(401, 403)}
    )
    def post(self, request):
        body = RefreshSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            return Response(refresh_token_pair(body.validated_data["refresh"]))
        except TokenRejected as rejected:
            _raise(rejected)


class LogoutView(APIView):
    """POST {refresh?}: revoke the presented access token (and refresh token); kick its sockets."""

    @extend_schema(request=LogoutSerializer, responses={200: RevokedSerializer})
    def post(self, request):
        body = LogoutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        refresh = None
        if raw_refresh := body.validated_data.get("refresh"):
            refresh = own_refresh_token(raw_refresh, request.user)
            if refresh is None:
                raise exceptions.ValidationError(
                    {"refresh": ["Not a valid refresh token of yours."]}
                )
        with transaction.atomic():
            revoke_access_token(request.auth)
            if refresh is not None:
                refresh.blacklist()
        return Response({"revoked": True})


class RevokeAllView(APIView):
    """POST: void every token of the caller and kick all their sockets on every instance."""

    @extend_schema(request=None, responses={200: RevokedSerializer})
    def post(self, request):
        with transaction.atomic():
            revoke_all_tokens(request.user)
        return Response({"revoked": True})


class WsTicketView(APIView):
    """POST → {ticket, expires_in}: a single-use WebSocket connection ticket for the caller's
    access token (``accounts.tickets``; docs/protocol.md §4.2). Never cached by anyone."""

    @extend_schema(request=None, responses={200: TicketSerializer})
    def post(self, request):
        response = Response(tickets.issue(request.auth))
        response["Cache-Control"] = "no-store"
        return response


class MeView(APIView):
    """GET: the caller's own account, private fields included."""

    @extend_schema(responses={200: MeSerializer})
    def get(self, request):
        return Response(MeSerializer(request.user).data)
