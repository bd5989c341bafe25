from django.conf import settings
from django.views.generic import TemplateView


class PlaygroundView(TemplateView):
    """The playground's single page. It holds no data: in the browser it signs in and calls the
    API like any other client."""

    template_name = "playground/index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # The file picker offers what POST /api/chat/attachments/ accepts (the server checks again).
        context["attachment_types"] = ",".join(getattr(settings, "ATTACHMENT_MEDIA_TYPES", []))
        context["attachment_max_bytes"] = getattr(settings, "ATTACHMENT_MAX_BYTES", 0)
        return context
