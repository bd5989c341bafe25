"""Orchestrator-worker: plan the feature as tasks, run one worker per task at the same time (at
most AGENT_MAX_CONCURRENT_WORKERS at once, no artificial delays), then summarise."""

from __future__ import annotations

import asyncio

from django.conf import settings

from .. import prompts
from ..context import RunContext
from ..schemas import ImplementationPlan, OrchestrationSummary, PlanTask, TaskResult

MAX_TASKS = 8


async def run(ctx: RunContext) -> OrchestrationSummary:
    feature = ctx.input["featureDescription"]
    plan = await ctx.object(
        "FeaturePlanning",
        ImplementationPlan,
        prompts.plan_feature(feature, MAX_TASKS),
        model=ctx.complex,
    )
    plan = plan.model_copy(update={"tasks": _distinct(plan.tasks)[:MAX_TASKS]})
    workers = asyncio.Semaphore(max(1, settings.AGENT_MAX_CONCURRENT_WORKERS))

    async def execute_task(task: PlanTask) -> TaskResult:
        async with workers:
            result = await ctx.object(
                f"TaskExecution-{task.id}",
                TaskResult,
                prompts.execute_task(feature, task),
                model=ctx.fast,
            )
        return result.model_copy(update={"taskId": task.id})

    task_results = await ctx.concurrently(*(execute_task(task) for task in plan.tasks))
    return await ctx.final(
        "OrchestrationSummary",
        OrchestrationSummary,
        prompts.summarize_orchestration(plan, task_results),
        model=ctx.complex,
    )


def _distinct(tasks: list[PlanTask]) -> list[PlanTask]:
    """Tasks with unique ids (a repeated id gets a suffix), so each worker's step is distinct."""
    seen: set[str] = set()
    distinct = []
    for task in tasks:
        task_id = task.id or "task"
        while task_id in seen:
            task_id = f"{task_id}-{len(seen) + 1}"
        seen.add(task_id)
        distinct.append(task if task_id == task.id else task.model_copy(update={"id": task_id}))
    return distinct
