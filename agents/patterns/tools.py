"""Multi-step tool usage: the complex model solves a math problem in a bounded function-calling loop
with `calculate` and `validateAnswer`, then writes the solution object from the tool transcript."""

from __future__ import annotations

from .. import prompts
from ..context import RunContext
from ..schemas import MathSolution
from ..tools import MATH_TOOLS

MAX_MODEL_CALLS = 8


async def run(ctx: RunContext) -> MathSolution:
    problem = ctx.input["problem"]
    transcript = await ctx.tool_loop(
        "ProblemSolving",
        prompts.solve_with_tools(problem),
        MATH_TOOLS,
        model=ctx.complex,
        max_steps=MAX_MODEL_CALLS,
    )
    return await ctx.final(
        "Solution",
        MathSolution,
        prompts.write_solution(problem, transcript["text"], transcript["toolCalls"]),
        model=ctx.complex,
    )
