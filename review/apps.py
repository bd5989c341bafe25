from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Conversation review: the queue of assistant replies staff read, annotate and mark reviewed.
    Above `chat` and `usage` (it reads their models); nothing imports it."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "review"
