from django.conf import settings
from django.db import models


class UsageRecord(models.Model):
    """Tokens spent by one model call, written by chat and agents after each call."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records"
    )
    endpoint = models.CharField(max_length=64, help_text="'chat' or 'agents:<pattern>'")
    model = models.CharField(max_length=100)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "created_at"])]

    def __str__(self) -> str:
        return f"{self.endpoint} {self.model} {self.total_tokens} tokens"
