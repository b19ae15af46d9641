"""Notes REST endpoints: thin views over ``notes.services`` (see docs/notes.md).

Every view resolves the note with ``services.note_access`` (404 when the caller may not read
it), validates the body with an input serializer, calls one service and renders the result
with an output serializer.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import AuthenticatedRequest
from config.openapi import errors

from . import services
from .serializers import (
    GrantCreateSerializer,
    GrantSerializer,
    NoteCreateSerializer,
    NoteSerializer,
    NoteUpdateSerializer,
)


class NoteListView(APIView):
    """GET: notes I can read, most recently updated first. POST {title, data?}: create one."""

    @extend_schema(operation_id="notes_list", responses={200: NoteSerializer(many=True)})
    def get(self, request: AuthenticatedRequest) -> Response:
        notes = services.readable_notes(request.user)
        return Response(NoteSerializer(notes, many=True).data)

    @extend_schema(request=NoteCreateSerializer, responses={201: NoteSerializer})
    def post(self, request: AuthenticatedRequest) -> Response:
        body = NoteCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = services.create_note(
            request.user, body.validated_data["title"], body.validated_data.get("data")
        )
        return Response(NoteSerializer(note).data, status=status.HTTP_201_CREATED)


class NoteDetailView(APIView):
    """GET (read), PATCH {title?, data?} (write), DELETE (owner or admin) one note."""

    @extend_schema(responses={200: NoteSerializer})
    def get(self, request: AuthenticatedRequest, note_id) -> Response:
        access = services.note_access(request.user, note_id)
        return Response(NoteSerializer(access.note).data)

    @extend_schema(request=NoteUpdateSerializer, responses={200: NoteSerializer, **errors(409)})
    def patch(self, request: AuthenticatedRequest, note_id) -> Response:
        access = services.note_access(request.user, note_id)
        access.require_write()
        body = NoteUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        note = services.update_note(
            access,
            title=body.validated_data.get("title"),
            data=body.validated_data.get("data"),
        )
        return Response(NoteSerializer(note).data)

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, note_id) -> Response:
        services.delete_note(services.note_access(request.user, note_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class GrantListView(APIView):
    """GET: the note's grants (writers). POST {principal_type, principal_id?, permission}:
    grant or change a principal's permission (owner or admin); 201 new, 200 changed."""

    @extend_schema(responses={200: GrantSerializer(many=True)})
    def get(self, request: AuthenticatedRequest, note_id) -> Response:
        access = services.note_access(request.user, note_id)
        return Response(GrantSerializer(services.grants_of(access), many=True).data)

    @extend_schema(
        request=GrantCreateSerializer, responses={201: GrantSerializer, 200: GrantSerializer}
    )
    def post(self, request: AuthenticatedRequest, note_id) -> Response:
        access = services.note_access(request.user, note_id)
        access.require_manage()
        body = GrantCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        grant, created = services.upsert_grant(
            access,
            body.validated_data["principal_type"],
            body.validated_data["principal"],
            body.validated_data["permission"],
        )
        return Response(
            GrantSerializer(grant).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class GrantDetailView(APIView):
    """DELETE: remove one grant (owner or admin)."""

    @extend_schema(responses={204: None})
    def delete(self, request: AuthenticatedRequest, note_id, grant_id) -> Response:
        services.delete_grant(services.note_access(request.user, note_id), grant_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
