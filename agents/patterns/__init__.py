"""The six agent patterns (where they come from: docs/agent-patterns.md): name, summary, request
body and workflow."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import serializers

from ..context import Workflow
from ..serializers import (
    EvaluatorInputSerializer,
    OrchestratorInputSerializer,
    ParallelInputSerializer,
    RoutingInputSerializer,
    SequentialInputSerializer,
    ToolsInputSerializer,
)
from . import evaluator, orchestrator, parallel, routing, sequential, tools


@dataclass(frozen=True)
class Pattern:
    name: str
    summary: str
    input_serializer: type[serializers.Serializer]
    workflow: Workflow


PATTERNS: dict[str, Pattern] = {
    pattern.name: pattern
    for pattern in (
        Pattern(
            "sequential",
            "Generate marketing copy, evaluate it, improve it when it scores below 7.",
            SequentialInputSerializer,
            sequential.run,
        ),
        Pattern(
            "routing",
            "Classify a customer query and answer it with the right specialist and model.",
            RoutingInputSerializer,
            routing.run,
        ),
        Pattern(
            "parallel",
            "Security, performance and maintainability reviews at once, then a summary.",
            ParallelInputSerializer,
            parallel.run,
        ),
        Pattern(
            "orchestrator",
            "Plan a feature as tasks, run one worker per task concurrently, summarise.",
            OrchestratorInputSerializer,
            orchestrator.run,
        ),
        Pattern(
            "evaluator",
            "Translate, then evaluate and improve (at most 3 rounds, stop at score 8.5).",
            EvaluatorInputSerializer,
            evaluator.run,
        ),
        Pattern(
            "tools",
            "Solve a math problem with calculate and validateAnswer tools in a multi-step loop.",
            ToolsInputSerializer,
            tools.run,
        ),
    )
}
