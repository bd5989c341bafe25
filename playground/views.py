from django.views.generic import TemplateView


class PlaygroundView(TemplateView):
    """The playground's single page. It holds no data: in the browser it signs in and calls the
    API like any other client."""

    template_name = "playground/index.html"
