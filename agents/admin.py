from django.contrib import admin

from .models import AgentRun, AgentStep


class AgentStepInline(admin.TabularInline):
    model = AgentStep
    extra = 0
    can_delete = False
    ordering = ["position"]
    fields = [
        "position",
        "name",
        "status",
        "model",
        "cached",
        "duration_ms",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "error",
        "output",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(AgentRun)
class AgentRunAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "pattern", "status", "total_tokens", "created_at", "finished_at"]
    list_filter = ["pattern", "status", "created_at"]
    search_fields = ["user__username", "user__email"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    readonly_fields = [
        "id",
        "user",
        "pattern",
        "status",
        "input",
        "final_output",
        "error",
        "total_tokens",
        "created_at",
        "finished_at",
        "heartbeat_at",
    ]
    inlines = [AgentStepInline]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
