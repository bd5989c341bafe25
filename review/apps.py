from django.apps import AppConfig
from django.db.models.signals import post_migrate


class ReviewConfig(AppConfig):
    """Conversation review: the queue of assistant replies staff read, annotate and mark reviewed.
    Above `chat` and `usage` (it reads their models); nothing imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "review"

    def ready(self) -> None:
        from .groups import on_post_migrate

        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="review.reviewer_group")
