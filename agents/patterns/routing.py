"""Routing: classify the query with the fast model, then answer with the specialist for its
category, on the complex model only when the query is complex."""

from __future__ import annotations

from .. import prompts
from ..context import RunContext
from ..schemas import QueryClassification, RoutedResponse


async def run(ctx: RunContext) -> RoutedResponse:
    query = ctx.input["query"]
    classification = await ctx.object(
        "QueryClassification", QueryClassification, prompts.classify_query(query), model=ctx.fast
    )
    model = ctx.complex if classification.complexity == "complex" else ctx.fast
    specialist = prompts.SPECIALISTS.get(classification.category, prompts.GENERALIST)
    return await ctx.final(
        "SpecialistResponse",
        RoutedResponse,
        prompts.specialist_response(query, classification),
        model=model,
        system=specialist,
    )
