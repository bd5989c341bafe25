from django.contrib import admin

from .models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "user",
        "endpoint",
        "model",
        "input_tokens",
        "output_tokens",
        "total_tokens",
    )
    list_filter = ("endpoint", "model", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__username", "endpoint", "model")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in UsageRecord._meta.fields]

    def has_add_permission(self, request):
        return False
