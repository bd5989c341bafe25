from django.apps import AppConfig


class ChatbackendConfig(AppConfig):
    """The project itself, as an app: only for its system checks."""

    name = "chatbackend"
    verbose_name = "Chat backend (project)"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers them
