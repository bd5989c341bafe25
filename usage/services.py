from core import sql
from core.db import run_db
from llm import Usage

from .models import UsageRecord


def usage_record(*, user_id: int, endpoint: str, model: str, usage: Usage) -> UsageRecord | None:
    """The row that accounts one model call's tokens to a user; None for a call that cost
    nothing (not stored)."""
    if not (usage.total_tokens or usage.input_tokens or usage.output_tokens):
        return None
    return UsageRecord(
        user_id=user_id,
        endpoint=endpoint,
        model=model,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens or usage.input_tokens + usage.output_tokens,
    )


def save_usage(*, user_id: int, endpoint: str, model: str, usage: Usage) -> None:
    """Account one model call's tokens to a user. Calls that cost nothing are not stored."""
    record = usage_record(user_id=user_id, endpoint=endpoint, model=model, usage=usage)
    if record is not None:
        # core.sql's INSERT, without the ORM's per-query work.
        sql.insert([record])


async def record_usage(*, user_id: int, endpoint: str, model: str, usage: Usage) -> None:
    """`save_usage` from async code, without keeping a database connection afterwards."""
    await run_db(save_usage, user_id=user_id, endpoint=endpoint, model=model, usage=usage)
