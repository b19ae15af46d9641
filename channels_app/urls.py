"""Channel API routes (mounted under /api/ by config.urls); see docs/channels.md."""

from django.urls import path

from . import views

urlpatterns = [
    path("channels/", views.ChannelListView.as_view(), name="channel-list"),
    path("channels/<uuid:channel_id>/", views.ChannelDetailView.as_view(), name="channel-detail"),
    path(
        "channels/<uuid:channel_id>/members/",
        views.ChannelMembersView.as_view(),
        name="channel-members",
    ),
    path(
        "channels/<uuid:channel_id>/members/<uuid:user_id>/",
        views.ChannelMemberView.as_view(),
        name="channel-member",
    ),
    path(
        "channels/<uuid:channel_id>/messages/",
        views.ChannelMessagesView.as_view(),
        name="channel-messages",
    ),
    path(
        "channels/<uuid:channel_id>/messages/<uuid:message_id>/",
        views.ChannelMessageView.as_view(),
        name="channel-message",
    ),
    path(
        "channels/<uuid:channel_id>/messages/<uuid:message_id>/reactions/",
        views.MessageReactionsView.as_view(),
        name="message-reactions",
    ),
    path("channels/<uuid:channel_id>/read/", views.ChannelReadView.as_view(), name="channel-read"),
    path(
        "channels/<uuid:channel_id>/presence/",
        views.ChannelPresenceView.as_view(),
        name="channel-presence",
    ),
]
