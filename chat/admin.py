from django.contrib import admin
from django.db.models import Count

from .models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    ordering = ["position"]
    fields = [
        "position",
        "role",
        "status",
        "content",
        "model",
        "total_tokens",
        "finish_reason",
        "created_at",
    ]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["title", "user", "message_count", "created_at", "updated_at"]
    list_filter = [("created_at", admin.DateFieldListFilter), "messages__role"]
    search_fields = ["title", "user__username", "messages__content"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "user",
        "client_chat_id",
        "created_at",
        "updated_at",
        "summarized_through",
    ]
    fields = [
        "id",
        "user",
        "title",
        "client_chat_id",
        "summary",
        "summarized_through",
        "created_at",
        "updated_at",
    ]
    inlines = [MessageInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(ordering="message_count")
    def message_count(self, obj):
        return obj.message_count

    def get_search_results(self, request, queryset, search_term):
        queryset, _ = super().get_search_results(request, queryset, search_term)
        return queryset, True  # searching messages joins rows: let the admin de-duplicate


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "conversation",
        "role",
        "status",
        "short_content",
        "model",
        "total_tokens",
    ]
    list_filter = ["role", "status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["content", "conversation__title", "conversation__user__username"]
    date_hierarchy = "created_at"
    list_select_related = ["conversation"]
    readonly_fields = [f.name for f in Message._meta.fields]

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:80]

    def has_add_permission(self, request):
        return False
