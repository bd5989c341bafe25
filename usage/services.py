from core import sql
from core.db import run_db
from llm import Usage

from .models import UsageRecord


def save_usage(*, user_id: int, endpoint: str, model: str, usage: Usage) -> None:
    """Account one model call's tokens to a user. Calls that cost nothing are not stored."""
    if not (usage.total_tokens or usage.input_tokens or usage.output_tokens):
        return
    # Every chat turn writes one: core.sql's INSERT, without the ORM's per-query work.
    sql.insert(
        [
            UsageRecord(
                user_id=user_id,
                endpoint=endpoint,
                model=model,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens or usage.input_tokens + usage.output_tokens,
            )
        ]
    )


async def record_usage(*, user_id: int, endpoint: str, model: str, usage: Usage) -> None:
    """`save_usage` from async code, without keeping a database connection afterwards."""
    await run_db(save_usage, user_id=user_id, endpoint=endpoint, model=model, usage=usage)
