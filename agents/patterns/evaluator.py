"""Evaluator-optimizer: translate, then evaluate and improve in turns until the translation scores
at least 8.5, with at most 3 evaluations (never a 4th round); the final object is a summary."""

from __future__ import annotations

from .. import prompts
from ..context import RunContext
from ..schemas import TranslationEvaluation, TranslationIteration, TranslationResult

MAX_ITERATIONS = 3
TARGET_SCORE = 8.5


async def run(ctx: RunContext) -> TranslationResult:
    text = ctx.input["text"]
    language = ctx.input["targetLanguage"]
    domain = ctx.input["domain"]

    translation = await ctx.text(
        "InitialTranslation", prompts.translate(text, language, domain), model=ctx.complex
    )
    iterations: list[TranslationIteration] = []
    for round_number in range(1, MAX_ITERATIONS + 1):
        evaluation = await ctx.object(
            f"Evaluation-{round_number}",
            TranslationEvaluation,
            prompts.evaluate_translation(text, translation, language, domain),
            model=ctx.fast,
        )
        iterations.append(
            TranslationIteration(
                iteration=round_number, translation=translation, evaluation=evaluation
            )
        )
        if evaluation.score >= TARGET_SCORE or round_number == MAX_ITERATIONS:
            break
        translation = await ctx.text(
            f"Improvement-{round_number}",
            prompts.improve_translation(text, translation, language, domain, evaluation),
            model=ctx.complex,
        )

    # Beyond the guide (docs/agent-patterns.md): an improvement can score lower than what it
    # replaced, so the final translation is the best-scoring one (the latest among equals).
    best = max(reversed(iterations), key=lambda iteration: iteration.evaluation.score)
    return await ctx.final(
        "OptimizationSummary",
        TranslationResult,
        prompts.summarize_translation(text, language, domain, best.translation, iterations),
        model=ctx.fast,
    )
