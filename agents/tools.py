"""The two tools of the multi-step tool pattern: `calculate` and `validateAnswer`.

Both are real: `calculate` evaluates arithmetic with the bounded evaluator of `agents.calculator`
(off the event loop, with a time limit), and `validateAnswer` recomputes the answer independently
and compares it, instead of the hard-coded `isValid: true` of the patterns' guide
(docs/agent-patterns.md). A refused or failed calculation raises, which the provider turns into a
tool error the model sees."""

from __future__ import annotations

import asyncio
import math
import re
from typing import Any

from llm import Tool, find_expression

from .calculator import CalculationError, Number, evaluate
from .schemas import CalculateArgs, ValidateAnswerArgs

CALCULATION_TIMEOUT_S = 1.0
ANSWER_NAMES = ("x", "answer")

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


async def calculate_in_time(expression: str, names: dict[str, Number] | None = None) -> Number:
    """`evaluate` in a worker thread, abandoned after CALCULATION_TIMEOUT_S."""
    try:
        return await asyncio.wait_for(
            asyncio.to_thread(evaluate, expression, names), timeout=CALCULATION_TIMEOUT_S
        )
    except TimeoutError as exc:
        raise CalculationError("The calculation took too long.") from exc


async def calculate(args: CalculateArgs) -> dict[str, Any]:
    result = await calculate_in_time(args.expression)
    return {"expression": args.expression, "result": result, "success": True}


def _proposed_number(text: str) -> tuple[float, int | None] | None:
    """The number an answer states, and how many decimals it was given with."""
    cleaned = re.sub(r"(?<=\d),(?=\d{3})", "", text.strip())
    if not _NUMBER.fullmatch(cleaned):
        try:
            return float(evaluate(cleaned)), None  # "3/4", "2**10"
        except CalculationError:
            pass
    match = _NUMBER.search(cleaned)
    if not match:
        return None
    literal = match.group()
    decimals = len(literal.split(".", 1)[1].split("e")[0].split("E")[0]) if "." in literal else 0
    return float(literal), decimals


def _agrees(expected: float, proposed: float, decimals: int | None) -> bool:
    if math.isclose(expected, proposed, rel_tol=1e-9, abs_tol=1e-9):
        return True
    # An answer given to N decimals agrees with the value rounded to N decimals.
    return decimals is not None and abs(expected - proposed) <= 0.5 * 10**-decimals + 1e-12


async def validate_answer(args: ValidateAnswerArgs) -> dict[str, Any]:
    """Recompute and compare. The validation method is either an equation in x checked by
    substituting the answer, or an expression whose value must equal the answer; without a usable
    one, an arithmetic expression found in the original problem is recomputed."""
    report: dict[str, Any] = {
        "method": args.validationMethod,
        "proposedAnswer": args.proposedAnswer,
    }
    parsed = _proposed_number(args.proposedAnswer)
    if parsed is None:
        return {**report, "isValid": False, "reason": "The proposed answer is not a number."}
    proposed, decimals = parsed
    names = dict.fromkeys(ANSWER_NAMES, proposed)

    method = args.validationMethod.strip()
    if method.count("=") == 1 and not re.search(r"[<>!=]=|=[=<>]", method):
        left, right = method.split("=")
        try:
            lhs = await calculate_in_time(left, names)
            rhs = await calculate_in_time(right, names)
        except CalculationError as exc:
            return {**report, "isValid": False, "reason": f"The equation cannot be checked: {exc}"}
        valid = _agrees(float(lhs), float(rhs), None)
        return {
            **report,
            "isValid": valid,
            "checked": f"{left.strip()} = {lhs} and {right.strip()} = {rhs} for x = {proposed:g}",
            "reason": "The answer satisfies the equation."
            if valid
            else "Substituting the answer does not satisfy the equation.",
        }

    expression = None
    if method:
        try:
            await calculate_in_time(method)
            expression = method
        except CalculationError:
            expression = None
    # Without a usable method, the problem's own arithmetic, found by the one expression finder
    # the project has (the offline provider's, which picks what its `calculate` call computes).
    expression = expression or find_expression(args.originalProblem)
    try:
        expected = None if expression is None else float(await calculate_in_time(expression))
    except CalculationError:
        expected = None
    if expression is None or expected is None:
        return {
            **report,
            "isValid": False,
            "reason": (
                "Nothing to recompute: give validationMethod as an arithmetic expression equal "
                "to the answer, or as an equation in x."
            ),
        }
    valid = _agrees(expected, proposed, decimals)
    return {
        **report,
        "isValid": valid,
        "expected": expected,
        "checked": expression,
        "reason": f"Recomputed {expression} = {expected:g}; the answer "
        + ("matches." if valid else f"{proposed:g} does not match."),
    }


CALCULATE = Tool(
    name="calculate",
    description="Perform mathematical calculations with a safe arithmetic evaluator.",
    parameters=CalculateArgs,
    run=calculate,
)

VALIDATE_ANSWER = Tool(
    name="validateAnswer",
    description=(
        "Validate a mathematical answer by substitution or alternative method: the answer is "
        "recomputed independently and compared."
    ),
    parameters=ValidateAnswerArgs,
    run=validate_answer,
)

MATH_TOOLS = (CALCULATE, VALIDATE_ANSWER)
