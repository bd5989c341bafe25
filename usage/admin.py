from datetime import timedelta

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from .charts import stacked_bars
from .models import UsageRecord
from .pricing import dollars
from .selectors import usage_per_day

REPORT_DAYS = 30
MAX_REPORT_DAYS = 366


class UsageReportForm(forms.Form):
    """What the usage page shows: grouped by model or by user, tokens or cost, which days."""

    by = forms.ChoiceField(choices=[("model", "model"), ("user", "user")], required=False)
    metric = forms.ChoiceField(
        choices=[("total_tokens", "tokens"), ("cost", "cost (USD)")], required=False
    )
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        today = timezone.now().date()
        data["by"] = data.get("by") or "model"
        data["metric"] = data.get("metric") or "total_tokens"
        data["until"] = data.get("until") or today
        data["since"] = data.get("since") or data["until"] - timedelta(days=REPORT_DAYS - 1)
        if data["since"] > data["until"]:
            raise forms.ValidationError("The first day comes after the last.")
        if (data["until"] - data["since"]).days >= MAX_REPORT_DAYS:
            raise forms.ValidationError(f"At most {MAX_REPORT_DAYS} days at a time.")
        return data


def tokens(value) -> str:
    return f"{int(value or 0):,}"


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
    list_select_related = ("user",)
    change_list_template = "admin/usage/usagerecord/change_list.html"  # links the usage page

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        report = path(
            "report/",
            self.admin_site.admin_view(self.report_view),
            name="usage_usagerecord_report",
        )
        return [report, *super().get_urls()]

    def report_view(self, request):
        """Tokens and cost per day, per model or per user: a chart and the same numbers as a
        table. Summed in the database (`usage_per_day`); staff with the view permission only."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        today = timezone.now().date()
        defaults = {
            "by": "model",
            "metric": "total_tokens",
            "since": str(today - timedelta(days=REPORT_DAYS - 1)),
            "until": str(today),
        }
        form = UsageReportForm({**defaults, **request.GET.dict()})
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Usage: tokens and cost per day",
            "form": form,
        }
        if not form.is_valid():
            return TemplateResponse(
                request, "admin/usage/usagerecord/report.html", context, status=400
            )
        choice = form.cleaned_data
        rows = usage_per_day(by=choice["by"], since=choice["since"], until=choice["until"])
        days = [
            choice["since"] + timedelta(days=n)
            for n in range((choice["until"] - choice["since"]).days + 1)
        ]
        metric = choice["metric"]
        shown = dollars if metric == "cost" else tokens
        chart = stacked_bars(
            days=days,
            values={(row["day"], row["key"]): row[metric] or 0 for row in rows},
            format_value=shown,
        )
        context.update(
            chart=chart,
            rows=[{**row, "cost_shown": dollars(row["cost"])} for row in rows],
            totals=_totals(rows),
            by=choice["by"],
            metric_label=dict(UsageReportForm.base_fields["metric"].choices)[metric],
            since=choice["since"],
            until=choice["until"],
        )
        return TemplateResponse(request, "admin/usage/usagerecord/report.html", context)


def _totals(rows: list[dict]) -> list[dict]:
    """Per key over the whole range, largest first, then the grand total (key None): added up
    from the database's daily sums (a few hundred rows at most), not from the records."""

    def zero(key) -> dict:
        sums = {"calls": 0, "input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        return {"key": key, **sums, "cost": None}

    by_key: dict = {}
    grand = zero(None)
    for row in rows:
        for entry in (by_key.setdefault(row["key"], zero(row["key"])), grand):
            for field in ("calls", "input_tokens", "output_tokens", "total_tokens"):
                entry[field] += row[field] or 0
            if row["cost"] is not None:
                entry["cost"] = (entry["cost"] or 0) + row["cost"]
    ranked = sorted(by_key.values(), key=lambda t: (-t["total_tokens"], str(t["key"])))
    return [{**t, "cost_shown": dollars(t["cost"])} for t in [*ranked, grand]]
