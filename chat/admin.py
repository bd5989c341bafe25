from uuid import UUID

from django.contrib import admin
from django.contrib.admin.views.main import ORDER_VAR
from django.db.models import Count, Q
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from attachments.signing import signed_url

from . import search
from .export import BATCH_SIZE, export_response
from .models import Conversation, Message

_PRE = "white-space:pre-wrap;margin:0 0 .5em"
_THUMBNAIL = "max-width:160px;max-height:160px;border:1px solid #ccc"


def _file_part(part: dict, owner_id) -> SafeString:
    media_type = str(part.get("mediaType") or "")
    name = str(part.get("filename") or media_type or "file")
    try:
        attachment_id = UUID(str(part.get("attachmentId")))
    except ValueError:
        # No stored attachment: the part's own url is not linked (it could be anything).
        return format_html("<div>file: {} ({})</div>", name, media_type)
    url = signed_url(attachment_id=attachment_id, user_id=owner_id)
    if media_type.startswith("image/"):
        return format_html(
            '<div><a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" '
            'style="{}"></a></div>',
            url,
            url,
            name,
            _THUMBNAIL,
        )
    return format_html(
        '<div>file: <a href="{}" target="_blank" rel="noopener">{}</a> ({})</div>',
        url,
        name,
        media_type,
    )


def _source_part(part: dict) -> SafeString:
    url = str(part.get("url") or "")
    title = str(part.get("title") or url)
    if not url.lower().startswith(("https://", "http://")):
        return format_html("<div>source: {}</div>", title)
    return format_html(
        '<div>source: <a href="{}" target="_blank" rel="noopener noreferrer nofollow">{}</a></div>',
        url,
        title,
    )


def render_parts(message: Message) -> SafeString:
    """A message's UIMessage parts, readable: text as written, reasoning folded, images as
    thumbnails and other files as links (through signed URLs made for the conversation's owner),
    sources as links. Everything the user or the model wrote is escaped by `format_html`."""
    parts = getattr(message, "parts", None) or [{"type": "text", "text": message.content}]
    owner_id = message.conversation.user_id
    shown = []
    for part in parts if isinstance(parts, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            shown.append(format_html('<div style="{}">{}</div>', _PRE, part.get("text", "")))
        elif kind == "reasoning":
            shown.append(
                format_html(
                    '<details><summary>reasoning</summary><div style="{}">{}</div></details>',
                    _PRE,
                    part.get("text", ""),
                )
            )
        elif kind == "file":
            shown.append(_file_part(part, owner_id))
        elif kind == "source-url":
            shown.append(_source_part(part))
        else:
            shown.append(format_html("<div><code>{}</code></div>", str(part)[:500]))
    return format_html_join("", "{}", ((html,) for html in shown))


def best_first(request, found):
    """Search results ranked (`search_rank`) best first, unless a column was clicked: the
    changelist orders its queryset before it searches it."""
    if request.GET.get(ORDER_VAR):
        return found
    return found.order_by("-search_rank", *found.query.order_by)


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    ordering = ["position"]
    fields = [
        "position",
        "role",
        "status",
        "shown_parts",
        "model",
        "total_tokens",
        "finish_reason",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="parts")
    def shown_parts(self, obj):
        return render_parts(obj)

    def get_queryset(self, request):
        # render_parts signs file URLs for the conversation's owner: one query, not one a row.
        return super().get_queryset(request).select_related("conversation")

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
    actions = ["export_jsonl", "export_csv"]
    export_batch_size = BATCH_SIZE

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(message_count=Count("messages"))

    @admin.display(ordering="message_count")
    def message_count(self, obj):
        return obj.message_count

    def get_search_results(self, request, queryset, search_term):
        """Full-text search of titles and message text on PostgreSQL (`chat.search`), or a
        username; ranked (`best_first`). `search_fields` (icontains) elsewhere."""
        term = search_term.strip()[: search.MAX_QUERY_CHARS]
        if not term or not search.full_text_search():
            queryset, _ = super().get_search_results(request, queryset, search_term)
            return queryset, True  # searching messages joins rows: let the admin de-duplicate
        found = search.matching_conversations(queryset, term, also=Q(user__username__iexact=term))
        return best_first(request, found), False  # filtered by id lists: no duplicate rows

    def get_list_display(self, request):
        if _searched(request):
            return [*self.list_display[:1], "search_snippet", *self.list_display[1:]]
        return self.list_display

    @admin.display(description="matching text")
    def search_snippet(self, obj):
        return getattr(obj, "snippet", "")

    def _export(self, request, queryset, format):
        return export_response(queryset, format, batch_size=self.export_batch_size)

    @admin.action(description="Export selected as JSON Lines", permissions=["view"])
    def export_jsonl(self, request, queryset):
        return self._export(request, queryset, "jsonl")

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return self._export(request, queryset, "csv")


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
    # The parts are shown rendered (`render_parts`), not as their JSON (nor as an editable field).
    readonly_fields = [f.name for f in Message._meta.fields if f.name != "parts"] + ["shown_parts"]
    exclude = ["parts"]

    @admin.display(description="parts")
    def shown_parts(self, obj):
        return render_parts(obj)

    @admin.display(description="content")
    def short_content(self, obj):
        return obj.content[:80]

    def has_add_permission(self, request):
        return False

    def get_search_results(self, request, queryset, search_term):
        """Full-text search of the message text on PostgreSQL, ranked; icontains elsewhere."""
        term = search_term.strip()[: search.MAX_QUERY_CHARS]
        if not term or not search.full_text_search():
            return super().get_search_results(request, queryset, search_term)
        return best_first(request, search.search_messages(queryset, term)), False


def _searched(request) -> bool:
    """Whether the changelist is showing full-text search results (ranked)."""
    return bool(request.GET.get("q", "").strip()) and search.full_text_search()
