"""MODEL_PRICES: the defaults, an override from the environment, and a refusal of a bad one."""

import json
import subprocess
import sys
from decimal import Decimal

import pytest

from tests.live_server import BASE_DIR, production_env
from usage.models import UsageRecord
from usage.pricing import cost_usd


def prices_in_a_process(**env: str) -> subprocess.CompletedProcess:
    """The MODEL_PRICES that settings make of `env`, printed as JSON by a fresh process."""
    code = "from django.conf import settings; import json; print(json.dumps(settings.MODEL_PRICES))"
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=BASE_DIR,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_environment_replaces_the_price_table():
    table = {"gemini-2.5-flash": {"input": 0.5, "output": 3}}
    result = prices_in_a_process(MODEL_PRICES=json.dumps(table))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == table
    default = json.loads(prices_in_a_process().stdout)
    assert default["gemini-2.5-pro"] == {"input": 1.25, "output": 10.0}


@pytest.mark.parametrize(
    "bad", ["not json", '{"m": 1}', '{"m": {"input": 1}}', '{"m": {"input": -1, "output": 1}}']
)
def test_a_bad_price_table_stops_the_start(bad):
    result = prices_in_a_process(MODEL_PRICES=bad)
    assert result.returncode != 0
    assert "MODEL_PRICES must be JSON" in result.stderr


@pytest.mark.django_db
def test_cost_of_a_row_and_of_a_model_without_a_price(user, settings):
    settings.MODEL_PRICES = {"m": {"input": 0.075, "output": 0.3}}
    UsageRecord.objects.create(
        user=user, endpoint="chat", model="m", input_tokens=1, output_tokens=0, total_tokens=1
    )
    UsageRecord.objects.create(
        user=user, endpoint="chat", model="x", input_tokens=9, output_tokens=9, total_tokens=18
    )
    costs = dict(UsageRecord.objects.annotate(cost=cost_usd()).values_list("model", "cost"))
    assert costs["x"] is None
    # A price below a millionth of a dollar a token is not rounded away: 1 token at $0.075/M
    # (exact on PostgreSQL; SQLite returns it to the field's 8 decimal places).
    assert abs(costs["m"] - Decimal("0.000000075")) <= Decimal("0.000000005")
