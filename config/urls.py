"""URL map: the JSON API under /api/, Django admin under /admin/, the demo page at /."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("accounts.urls")),
    path("api/", include("channels_app.urls")),
    path("api/", include("notes.urls")),
    path("", include("demo.urls")),
]

handler400 = "config.api_errors.bad_request"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
