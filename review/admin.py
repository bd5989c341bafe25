"""The review queue: assistant replies to read, filter and mark reviewed, in the admin.

A reviewer (the `reviewer` group, see groups.py) sees the queue (`Reply`, a proxy of
`chat.Message`) and writes reviews; every field of the reply is read-only here, and nothing on
this page ever saves the message itself (`save_model`), so the text cannot be changed through it.
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, Exists, OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from chat.admin import render_parts
from chat.export import export_response
from chat.models import Conversation, Message, MessageFeedback
from usage.pricing import cost_usd, dollars

from .models import Reply, ReplyReview
from .services import mark_reviewed

EXCERPT_CHARS = 120


def _votes(rating: str) -> Coalesce:
    """How many users rated the reply `rating`: a subquery, so that the queue needs no GROUP BY
    over the message's columns."""
    votes = (
        MessageFeedback.objects.filter(message=OuterRef("pk"), rating=rating)
        .order_by()
        .values("message")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(votes), Value(0))


def _has_feedback(**conditions) -> Exists:
    return Exists(MessageFeedback.objects.filter(message=OuterRef("pk"), **conditions))


class ReviewStateFilter(admin.SimpleListFilter):
    """Open (not yet reviewed) by default: `ReplyQueueAdmin.changelist_view` sends a request
    without this parameter to `?review=open`. Its own "all" replaces the admin's "All" entry,
    which would only remove the parameter (and so come back to "open")."""

    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("reviewed", "reviewed"), ("all", "all")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(review__isnull=True)
        if self.value() == "reviewed":
            return queryset.filter(review__isnull=False)
        return queryset

    def choices(self, changelist):
        entries = list(super().choices(changelist))
        return entries[1:]  # without "All" (see the class's docstring)


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return [
            ("down", "thumbs-down"),
            ("up", "thumbs-up"),
            ("commented", "with a comment"),
            ("none", "no feedback"),
        ]

    def queryset(self, request, queryset):
        if self.value() in {"down", "up"}:
            return queryset.filter(_has_feedback(rating=self.value()))
        if self.value() == "commented":
            return queryset.filter(_has_feedback(comment__gt=""))
        if self.value() == "none":
            return queryset.filter(~_has_feedback())
        return queryset


class OverThresholdFilter(admin.SimpleListFilter):
    """Replies that used more tokens than `REVIEW_TOKEN_THRESHOLD`, or cost more than
    `REVIEW_COST_THRESHOLD_USD` (at `MODEL_PRICES`)."""

    title = "over threshold"
    parameter_name = "over"

    def lookups(self, request, model_admin):
        return [
            ("tokens", f"over {settings.REVIEW_TOKEN_THRESHOLD:,} tokens"),
            ("cost", f"over ${settings.REVIEW_COST_THRESHOLD_USD:g}"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "tokens":
            return queryset.filter(total_tokens__gt=settings.REVIEW_TOKEN_THRESHOLD)
        if self.value() == "cost":
            return queryset.filter(cost__gt=settings.REVIEW_COST_THRESHOLD_USD)
        return queryset


class ReviewForm(forms.ModelForm):
    class Meta:
        model = ReplyReview
        fields = ["note"]
        widgets = {"note": forms.Textarea(attrs={"rows": 3, "cols": 80})}
        help_texts = {"note": "Saving this page marks the reply reviewed, by you, now."}

    def has_changed(self) -> bool:
        # Saving the page is the reviewer's "reviewed": an empty note marks it reviewed too.
        return True


class ReviewInline(admin.StackedInline):
    model = ReplyReview
    form = ReviewForm
    fields = ["note", "reviewer", "reviewed_at"]
    readonly_fields = ["reviewer", "reviewed_at"]
    extra = 1
    max_num = 1
    can_delete = False
    verbose_name = "review"


@admin.register(Reply)
class ReplyQueueAdmin(admin.ModelAdmin):
    list_display = [
        "when",
        "excerpt",
        "conversation_link",
        "status",
        "model",
        "feedback_summary",
        "total_tokens",
        "cost",
        "review_state",
    ]
    list_display_links = ["excerpt"]
    list_filter = [
        ReviewStateFilter,
        FeedbackFilter,
        "status",
        OverThresholdFilter,
        ("model", admin.AllValuesFieldListFilter),
        ("conversation__user", admin.RelatedOnlyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    show_facets = admin.ShowFacets.ALWAYS  # the queue shows how many replies each filter holds
    date_hierarchy = "created_at"
    search_fields = ["content", "conversation__title", "conversation__user__username"]
    ordering = ["-created_at"]
    list_per_page = 50
    actions = ["mark_selected_reviewed", "export_jsonl", "export_csv"]
    inlines = [ReviewInline]
    fields = [
        "conversation_link",
        "user",
        "created_at",
        "status",
        "model",
        "finish_reason",
        ("input_tokens", "output_tokens", "total_tokens"),
        "cost",
        "prompt",
        "reply",
        "feedback_given",
    ]
    readonly_fields = [
        "conversation_link",
        "user",
        "created_at",
        "status",
        "model",
        "finish_reason",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost",
        "prompt",
        "reply",
        "feedback_given",
    ]

    def get_queryset(self, request):
        feedback = MessageFeedback.objects.select_related("user").order_by("created_at")
        return (
            super()
            .get_queryset(request)
            .filter(role=Message.Role.ASSISTANT)
            .select_related("conversation__user", "review__reviewer")
            .prefetch_related(Prefetch("feedback", queryset=feedback))
            .annotate(cost=cost_usd(), down_votes=_votes("down"), up_votes=_votes("up"))
        )

    def changelist_view(self, request, extra_context=None):
        # The open replies are the queue: where no review state is asked for, show them.
        param = ReviewStateFilter.parameter_name
        if request.method == "GET" and param not in request.GET:
            query = request.GET.copy()
            query[param] = "open"
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, {"title": "Review queue", **(extra_context or {})})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        context = {"title": "Review a reply", **(extra_context or {})}
        return super().change_view(request, object_id, form_url, context)

    # --- Who may do what --------------------------------------------------------------------------

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        # "Changing" a reply here is reviewing it (every field of the message is read-only).
        return self.has_annotate_permission(request)

    def has_annotate_permission(self, request) -> bool:
        return request.user.has_perm("review.add_replyreview") or request.user.has_perm(
            "review.change_replyreview"
        )

    # --- Saving: the review only ----------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        """The message is never written from the queue: only its review (`save_formset`)."""

    def save_formset(self, request, form, formset, change):
        # What the admin's history (LogEntry) records about the formset, set as formset.save()
        # would set it.
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for review_form in formset.forms:
            if not review_form.has_changed():
                continue
            existed = review_form.instance.pk is not None
            review = mark_reviewed(
                message=form.instance,
                reviewer=request.user,
                note=review_form.cleaned_data.get("note", ""),
            )
            if existed:
                formset.changed_objects.append((review, ["note", "reviewer", "reviewed_at"]))
            else:
                formset.new_objects.append(review)

    @admin.action(description="Mark selected replies reviewed", permissions=["annotate"])
    def mark_selected_reviewed(self, request, queryset):
        replies = list(queryset)
        for reply in replies:
            mark_reviewed(message=reply, reviewer=request.user)
        self.message_user(request, f"{len(replies)} replies marked reviewed.", messages.SUCCESS)

    def _export(self, queryset, format):
        """The conversations the selected replies belong to, whole, as the conversation list's
        export writes them."""
        ids = queryset.order_by().values("conversation_id")
        return export_response(Conversation.objects.filter(pk__in=ids), format)

    @admin.action(description="Export their conversations as JSON Lines", permissions=["view"])
    def export_jsonl(self, request, queryset):
        return self._export(queryset, "jsonl")

    @admin.action(description="Export their conversations as CSV", permissions=["view"])
    def export_csv(self, request, queryset):
        return self._export(queryset, "csv")

    # --- Columns and fields ---------------------------------------------------------------------

    @admin.display(description="created", ordering="created_at")
    def when(self, obj):
        return f"{timezone.localtime(obj.created_at):%Y-%m-%d %H:%M}"

    @admin.display(description="reply")
    def excerpt(self, obj):
        return Truncator(obj.content or "(no text)").chars(EXCERPT_CHARS)

    @admin.display(description="conversation, user", ordering="conversation__title")
    def conversation_link(self, obj):
        url = reverse("admin:chat_conversation_change", args=[obj.conversation_id])
        return format_html(
            '<a href="{}">{}</a><br><small>{}</small>',
            url,
            obj.conversation.title,
            obj.conversation.user.get_username(),
        )

    @admin.display(description="user", ordering="conversation__user__username")
    def user(self, obj):
        return obj.conversation.user.get_username()

    @admin.display(description="feedback", ordering="down_votes")
    def feedback_summary(self, obj):
        if not obj.down_votes and not obj.up_votes:
            return ""
        comments = [f.comment for f in obj.feedback.all() if f.comment]
        return format_html(
            "down {} · up {}{}",
            obj.down_votes,
            obj.up_votes,
            format_html("<br><small>{}</small>", Truncator(comments[0]).chars(80))
            if comments
            else "",
        )

    @admin.display(description="cost (USD)", ordering="cost")
    def cost(self, obj):
        return dollars(obj.cost)

    @admin.display(description="review", ordering="review__reviewed_at")
    def review_state(self, obj):
        review = getattr(obj, "review", None)
        if review is None:
            return "open"
        return format_html(
            "reviewed by {} on {}{}",
            review.reviewer.get_username(),
            f"{review.reviewed_at:%Y-%m-%d %H:%M}",
            format_html("<br><small>{}</small>", Truncator(review.note).chars(80))
            if review.note
            else "",
        )

    @admin.display(description="asked")
    def prompt(self, obj):
        """The user's message this reply answers (the last one before it)."""
        asked = (
            Message.objects.filter(
                conversation_id=obj.conversation_id,
                position__lt=obj.position,
                role=Message.Role.USER,
            )
            .select_related("conversation")
            .order_by("-position")
            .first()
        )
        return render_parts(asked) if asked else "—"

    @admin.display(description="reply")
    def reply(self, obj):
        return render_parts(obj)

    @admin.display(description="feedback")
    def feedback_given(self, obj):
        given = list(obj.feedback.all())
        if not given:
            return "—"
        return format_html_join(
            "",
            "<div>{} {} {}: {} <small>{}</small></div>",
            (
                (
                    "thumbs-down" if f.rating == MessageFeedback.Rating.DOWN else "thumbs-up",
                    f.user.get_username(),
                    f"{f.updated_at:%Y-%m-%d %H:%M}",
                    f.comment or "(no comment)",
                    ", ".join(map(str, f.categories)) if isinstance(f.categories, list) else "",
                )
                for f in given
            ),
        )
