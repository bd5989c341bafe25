from django.apps import AppConfig


class AttachmentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "attachments"

    def ready(self):
        from . import checks  # noqa: F401 (registers the system check)
