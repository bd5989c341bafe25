from django.apps import AppConfig


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        from core import hub, lifecycle, liveness

        from . import checks, generation  # noqa: F401 (checks registers itself)

        liveness.register(
            generation.LIVENESS_KIND,
            beat=generation.beat_replies,
            sweep=generation.sweep_stale_replies,
        )
        # Shutdown hooks run in reverse: every reply here is saved `interrupted` first, then the
        # hub writes their last frames and closes, then the heartbeat stops.
        lifecycle.on_shutdown(hub.aclose_hub)
        lifecycle.on_shutdown(generation.stop_all)
