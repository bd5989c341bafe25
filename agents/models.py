import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Status(models.TextChoices):
    """Where a run, or one of its steps, is: `interrupted` when the client left or the worker
    running it died (core.liveness)."""

    RUNNING = "running"
    COMPLETE = "complete"
    ERROR = "error"
    INTERRUPTED = "interrupted"


class AgentRun(models.Model):
    """One execution of an agent pattern: what was asked, what each step did, what came out."""

    Status = Status

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_runs"
    )
    pattern = models.CharField(max_length=32, db_index=True)
    input = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    final_output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="The safe message shown to the client.")
    total_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        default=timezone.now,
        help_text="Last sign of life of the process running it (core.liveness): a run still "
        "running whose heartbeat is older than STREAM_STALE_S is marked interrupted.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            # What every worker's sweep looks for: the few runs still running, by heartbeat.
            models.Index(
                fields=["heartbeat_at"],
                condition=models.Q(status="running"),
                name="agentrun_running_heartbeat",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pattern} run {self.id} ({self.status})"


class AgentStep(models.Model):
    """One named step of a run: usually one model call (or a cache hit standing in for one)."""

    Status = Status

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField(help_text="Order in which the steps started.")
    name = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    model = models.CharField(max_length=100, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    total_tokens = models.PositiveIntegerField(default=0)
    cached = models.BooleanField(default=False, help_text="Answered from the step cache.")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="unique_step_position")
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.name} ({self.status})"
