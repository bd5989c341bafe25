"""What tokens cost, from `settings.MODEL_PRICES` (dollars per 1M input / output tokens by model).

One definition, as a database expression, so that the review queue can filter and sort replies by
cost and the usage page can sum cost per day in the same query that sums the tokens:

    Message.objects.annotate(cost=cost_usd())
    UsageRecord.objects.values("model").annotate(cost=Sum(cost_usd()))

A model without a price costs NULL (shown as "—"), not zero: a missing price must not look free.
"""

from decimal import Decimal

from django.conf import settings
from django.db.models import Case, DecimalField, ExpressionWrapper, F, Value, When
from django.db.models.functions import Coalesce

__all__ = ["COST", "cost_usd", "dollars", "priced_models"]

#: The output field of every cost: dollars, to a millionth of a cent.
COST = DecimalField(max_digits=18, decimal_places=8)
_MILLION = Decimal(1_000_000)


def priced_models() -> set[str]:
    return set(settings.MODEL_PRICES)


def cost_usd(
    *,
    model: str = "model",
    input_tokens: str = "input_tokens",
    output_tokens: str = "output_tokens",
) -> Case:
    """The cost in dollars of a row's tokens, given the names of its model and token fields
    (the defaults fit both `chat.Message` and `usage.UsageRecord`). NULL tokens count as none."""
    whens = []
    for name, price in sorted(settings.MODEL_PRICES.items()):
        # Per token, as exact decimals (3E-7 for $0.30 a million): never an integer, so that
        # neither database divides integers, and never rounded to the result's decimal places.
        per_input = Value(Decimal(str(price["input"])) / _MILLION, output_field=DecimalField())
        per_output = Value(Decimal(str(price["output"])) / _MILLION, output_field=DecimalField())
        spent = ExpressionWrapper(
            _tokens(input_tokens) * per_input + _tokens(output_tokens) * per_output,
            output_field=COST,
        )
        whens.append(When(**{model: name}, then=spent))
    return Case(*whens, default=Value(None, output_field=COST), output_field=COST)


def _tokens(field: str) -> Coalesce:
    return Coalesce(F(field), Value(0))


def dollars(cost: Decimal | None) -> str:
    """A cost as staff read it: to a hundredth of a cent, or "—" where there is no price."""
    return "—" if cost is None else f"${cost:,.4f}"
