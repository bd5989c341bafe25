from django.urls import path

from .views import PATTERN_VIEWS, AgentRunDetailView, AgentRunListView

urlpatterns = [
    *(
        path(f"{name}/", view.as_view(), name=f"agent-{name}")
        for name, view in PATTERN_VIEWS.items()
    ),
    path("runs/", AgentRunListView.as_view(), name="agent-run-list"),
    path("runs/<uuid:pk>/", AgentRunDetailView.as_view(), name="agent-run-detail"),
]
