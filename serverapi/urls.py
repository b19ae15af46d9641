"""``/api/server/``: the HTTP server API for backends (docs/server-api.md)."""

from django.urls import path

from . import views

urlpatterns = [
    path("batch/", views.BatchView.as_view(), name="server-batch"),
    path("rooms/<str:room>/events/", views.RoomEventsView.as_view(), name="server-room-events"),
    path(
        "rooms/<str:room>/presence/",
        views.RoomPresenceView.as_view(),
        name="server-room-presence",
    ),
    path("rooms/<str:room>/members/", views.RoomMembersView.as_view(), name="server-room-members"),
    path(
        "rooms/<str:room>/members/<str:user_id>/",
        views.RoomMemberView.as_view(),
        name="server-room-member",
    ),
    path("users/<str:user_id>/events/", views.UserEventsView.as_view(), name="server-user-events"),
    path(
        "users/<str:user_id>/disconnect/",
        views.UserDisconnectView.as_view(),
        name="server-user-disconnect",
    ),
    path(
        "users/<str:user_id>/revoke-tokens/",
        views.UserRevokeTokensView.as_view(),
        name="server-user-revoke-tokens",
    ),
    path("sessions/<str:sid>/events/", views.SessionEventsView.as_view(), name="server-sid-events"),
    path("sessions/<str:sid>/call/", views.SessionCallView.as_view(), name="server-sid-call"),
    path(
        "sessions/<str:sid>/disconnect/",
        views.SessionDisconnectView.as_view(),
        name="server-sid-disconnect",
    ),
    path("broadcast/", views.BroadcastView.as_view(), name="server-broadcast"),
]
