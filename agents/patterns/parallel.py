"""Parallel processing: security, performance and maintainability reviews of the same code run at
the same time (the wait is the slowest review, not the sum), then one combined summary."""

from __future__ import annotations

from .. import prompts
from ..context import RunContext
from ..schemas import CodeReviewSummary, MaintainabilityReview, PerformanceReview, SecurityReview


async def run(ctx: RunContext) -> CodeReviewSummary:
    code = ctx.input["code"]
    security, performance, maintainability = await ctx.concurrently(
        ctx.object("SecurityReview", SecurityReview, prompts.security_review(code), model=ctx.fast),
        ctx.object(
            "PerformanceReview", PerformanceReview, prompts.performance_review(code), model=ctx.fast
        ),
        ctx.object(
            "MaintainabilityReview",
            MaintainabilityReview,
            prompts.maintainability_review(code),
            model=ctx.fast,
        ),
    )
    return await ctx.final(
        "ReviewSummary",
        CodeReviewSummary,
        prompts.review_summary(security, performance, maintainability),
        model=ctx.complex,
    )
