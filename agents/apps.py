from django.apps import AppConfig


class AgentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "agents"

    def ready(self) -> None:
        from core import liveness

        from . import services
        from .execution import RUN_KIND

        # A run's row is stamped while its process runs it; a run left `running` by a process
        # that died is marked interrupted by any live one (core.liveness).
        liveness.register(
            RUN_KIND,
            beat=lambda run_ids: services.beat_runs(run_ids=run_ids),
            sweep=lambda stale_before: services.sweep_stale_runs(stale_before=stale_before),
        )
