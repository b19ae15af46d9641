"""URL map: the JSON API under /api/ (its OpenAPI schema at /api/schema/, Swagger UI at
/api/docs/), Django admin under /admin/, the demo page at /."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config.openapi import ServedSchemaGenerator

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("accounts.urls")),
    path("api/", include("channels_app.urls")),
    path("api/", include("notes.urls")),
    path("api/server/", include("serverapi.urls")),
    path(
        "api/schema/",
        SpectacularAPIView.as_view(generator_class=ServedSchemaGenerator),
        name="api-schema",
    ),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("demo.urls")),
]

handler400 = "config.api_errors.bad_request"
handler404 = "config.api_errors.not_found"
handler500 = "config.api_errors.server_error"
