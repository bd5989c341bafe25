from django.apps import AppConfig


class ChatbackendConfig(AppConfig):
    """The project itself, as an app: its system checks and `seed_demo` (which fills every app)."""

    name = "chatbackend"
    verbose_name = "Chat backend (project)"

    def ready(self) -> None:
        from . import checks  # noqa: F401 - registers them
