from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from . import adb, lifecycle

        # Registered before the other apps' hooks, so run after them (in reverse): the replies
        # stopped at shutdown are saved through this pool first.
        lifecycle.on_shutdown(adb.close)
