"""Notes API routes (mounted under /api/ by config.urls); see docs/notes.md."""

from django.urls import path

from . import views

urlpatterns = [
    path("notes/", views.NoteListView.as_view(), name="note-list"),
    path("notes/<uuid:note_id>/", views.NoteDetailView.as_view(), name="note-detail"),
    path("notes/<uuid:note_id>/grants/", views.GrantListView.as_view(), name="note-grants"),
    path(
        "notes/<uuid:note_id>/grants/<uuid:grant_id>/",
        views.GrantDetailView.as_view(),
        name="note-grant-detail",
    ),
]
