from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.views import admin_login

from .health import healthz, readyz

urlpatterns = [
    # The admin's login with login throttling (a 429 page over AUTH_RATE_LIMIT): before admin/.
    path("admin/login/", admin_login),
    path("admin/", admin.site.urls),
    path("api/auth/", include("accounts.urls")),
    path("api/chat/attachments/", include("attachments.urls")),
    path("api/chat/", include("chat.urls")),
    path("api/agents/", include("agents.urls")),
    path("api/usage/", include("usage.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("", include("playground.urls")),
]

handler400 = "core.errors.handler400"
handler403 = "core.errors.handler403"
handler404 = "core.errors.handler404"
handler500 = "core.errors.handler500"
