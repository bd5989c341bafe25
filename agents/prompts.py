"""The prompts of the six patterns, word for word where their guide has one, as functions of their
inputs (provenance: docs/agent-patterns.md). Additions beyond the guide are marked."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel


def _json(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return json.dumps(value, ensure_ascii=False)


# --- 1. Sequential processing -------------------------------------------------------------------
def initial_copy(product: str) -> str:
    return (
        f"Create compelling marketing copy for: {product}. Focus on benefits and emotional appeal."
    )


def evaluate_copy(copy: str) -> str:
    return f"""Evaluate this marketing copy on a scale of 1-10:

{copy}

Consider: clarity, persuasiveness, emotional appeal, and call-to-action strength."""


def improve_copy(copy: str, score: float, feedback: str, improvements: list[str]) -> str:
    return f"""Based on the evaluation feedback, improve this marketing copy:

Original: {copy}
Score: {score:g}/10
Feedback: {feedback}
Specific improvements needed: {", ".join(improvements)}

Provide the improved version and a new quality score."""


def package_copy(copy: str, score: float) -> str:
    return f"""Package the original content as the final result:

Content: {copy}
Score: {score:g}/10"""


# --- 2. Routing ---------------------------------------------------------------------------------
SPECIALISTS = {
    "technical": "You are a senior software engineer with expertise in system architecture.",
    "marketing": "You are a marketing specialist focused on customer acquisition.",
    "support": "You are a customer support specialist focused on problem resolution.",
}
GENERALIST = "You are a helpful assistant."


def classify_query(query: str) -> str:
    return f"""Classify this customer query:

"{query}"

Determine the category, complexity level, urgency, and required expertise."""


def specialist_response(query: str, classification: BaseModel) -> str:
    return f"""Customer Query: "{query}"

Classification: {_json(classification)}

Provide a comprehensive response with next steps and estimated resolution time."""


# --- 3. Parallel processing ---------------------------------------------------------------------
def security_review(code: str) -> str:
    return f"Perform a security review of this code:\n\n{code}"


def performance_review(code: str) -> str:
    return f"Perform a performance review of this code:\n\n{code}"


def maintainability_review(code: str) -> str:
    return f"Perform a maintainability review of this code:\n\n{code}"


def review_summary(security: BaseModel, performance: BaseModel, maintainability: BaseModel) -> str:
    return f"""Analyze these three code review results and provide a comprehensive summary:

Security Review: {_json(security)}
Performance Review: {_json(performance)}
Maintainability Review: {_json(maintainability)}

Calculate an overall score and prioritize actions by importance and effort."""


# --- 4. Orchestrator-worker ---------------------------------------------------------------------
def plan_feature(feature: str, max_tasks: int) -> str:
    # Beyond the guide: the task count is bounded.
    return f"""Create a detailed implementation plan for: {feature}

Break down into specific, actionable tasks with dependencies and estimates.
Use at most {max_tasks} tasks."""


def execute_task(feature: str, task: BaseModel) -> str:
    # Beyond the guide: the worker is told which feature and which task id it works on.
    return f"""Execute this task: {task.title} - {task.description}

Task id: {task.id}
Part of the feature: {feature}

Provide implementation details and any blockers encountered."""


def summarize_orchestration(plan: BaseModel, task_results: list[BaseModel]) -> str:
    return f"""Summarize the feature implementation progress:

Original Plan: {_json(plan)}
Task Results: {_json([result.model_dump(mode="json") for result in task_results])}

Provide a comprehensive status update and next steps."""


# --- 5. Evaluator-optimizer ---------------------------------------------------------------------
def translate(text: str, target_language: str, domain: str) -> str:
    return f"Translate this text to {target_language} for {domain} context: {text}"


def evaluate_translation(text: str, translation: str, target_language: str, domain: str) -> str:
    return f"""Evaluate this {target_language} translation for {domain} domain:

Original: {text}
Translation: {translation}

Rate accuracy, naturalness, and domain appropriateness."""


def improve_translation(
    text: str, translation: str, target_language: str, domain: str, evaluation: Any
) -> str:
    return f"""Improve this {target_language} translation based on feedback:

Original text: {text}
Current translation: {translation}
Score: {evaluation.score:g}/10
Issues: {", ".join(evaluation.specificIssues)}
Feedback: {evaluation.feedback}

Domain: {domain}

Provide an improved translation that addresses these issues."""


def summarize_translation(
    text: str, target_language: str, domain: str, final_translation: str, iterations: list[Any]
) -> str:
    return f"""Summarize the translation optimization process:

Original: {text}
Target Language: {target_language}
Domain: {domain}
Final Translation: {final_translation}
Iterations: {_json([iteration.model_dump(mode="json") for iteration in iterations])}

Explain the improvements made through each iteration."""


# --- 6. Multi-step tool usage -------------------------------------------------------------------
def solve_with_tools(problem: str) -> str:
    return f"""Solve this math problem step by step: {problem}

Use the calculate tool for any mathematical operations.
Show your work clearly with each step.
Validate your final answer using the validateAnswer tool.

Make sure to:
1. Break down the problem into manageable steps
2. Use the calculator for all numerical computations
3. Explain your reasoning for each step
4. Verify your final answer"""


def write_solution(problem: str, worked_answer: str, tool_calls: list[dict[str, Any]]) -> str:
    # Beyond the guide: the tool loop and the structured answer are two calls, so the second one
    # is given the transcript of the first (Gemini cannot mix function calling and JSON mode).
    return f"""Solve this math problem step by step: {problem}

The calculations below were already made with the calculate and validateAnswer tools.
Use their results as they are; do not recompute them differently.

Tool calls: {_json(tool_calls)}

Worked answer: {worked_answer}

Write the solution with each step, the final answer and how it was verified."""
