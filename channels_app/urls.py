from django.urls import path

from . import views

urlpatterns = [
    path(
        "channels/<uuid:channel_id>/presence/",
        views.ChannelPresenceView.as_view(),
        name="channel-presence",
    ),
]
