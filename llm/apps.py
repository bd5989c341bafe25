from django.apps import AppConfig


class LlmConfig(AppConfig):
    """The provider layer. No models; registers the `settings.LLM` system check."""

    name = "llm"
    verbose_name = "Model provider"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers the check
