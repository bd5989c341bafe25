"""Sequential processing: generate marketing copy, evaluate it, and improve it only when it scores
below 7; the final object is streamed."""

from __future__ import annotations

from .. import prompts
from ..context import RunContext
from ..schemas import CopyEvaluation, SequentialResult

IMPROVE_BELOW = 7


async def run(ctx: RunContext) -> SequentialResult:
    product = ctx.input["input"]
    copy = await ctx.text("InitialGeneration", prompts.initial_copy(product), model=ctx.complex)
    evaluation = await ctx.object(
        "QualityEvaluation", CopyEvaluation, prompts.evaluate_copy(copy), model=ctx.fast
    )
    if evaluation.score < IMPROVE_BELOW:
        prompt = prompts.improve_copy(
            copy, evaluation.score, evaluation.feedback, evaluation.improvements
        )
        return await ctx.final("Improvement", SequentialResult, prompt, model=ctx.complex)
    prompt = prompts.package_copy(copy, evaluation.score)
    return await ctx.final("FinalPackaging", SequentialResult, prompt, model=ctx.complex)
