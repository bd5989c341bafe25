"""Pydantic models for every schema of the six patterns, with their guide's constraints: scores
1..10, enums as Literal (provenance: docs/agent-patterns.md). They are the response schemas sent
to the model and the validators of what comes back."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Level = Literal["low", "medium", "high"]
Severity = Literal["low", "medium", "high", "critical"]


# --- 1. Sequential processing -------------------------------------------------------------------
class CopyEvaluation(BaseModel):
    score: float = Field(ge=1, le=10)
    feedback: str
    improvements: list[str]


class SequentialResult(BaseModel):
    originalContent: str
    evaluation: CopyEvaluation
    improvedContent: str | None = None
    finalScore: float | None = Field(default=None, ge=1, le=10)
    processingSteps: list[str]


# --- 2. Routing ---------------------------------------------------------------------------------
class QueryClassification(BaseModel):
    category: Literal["technical", "marketing", "support", "general"]
    complexity: Literal["simple", "moderate", "complex"]
    urgency: Level
    requiredExpertise: list[str]


class RoutedResponse(BaseModel):
    classification: QueryClassification
    response: str
    nextSteps: list[str]
    estimatedResolutionTime: str


# --- 3. Parallel processing ---------------------------------------------------------------------
class Vulnerability(BaseModel):
    type: str
    severity: Severity
    description: str
    line: int | None = None


class SecurityReview(BaseModel):
    score: float = Field(ge=1, le=10)
    vulnerabilities: list[Vulnerability]
    recommendations: list[str]


class PerformanceIssue(BaseModel):
    type: str
    impact: Level
    description: str
    suggestion: str


class PerformanceReview(BaseModel):
    score: float = Field(ge=1, le=10)
    issues: list[PerformanceIssue]
    optimizations: list[str]


class MaintainabilityReview(BaseModel):
    score: float = Field(ge=1, le=10)
    codeSmells: list[str]
    suggestions: list[str]
    complexity: Level


class PrioritizedAction(BaseModel):
    action: str
    priority: Severity
    effort: Level


class CodeReviewSummary(BaseModel):
    security: SecurityReview
    performance: PerformanceReview
    maintainability: MaintainabilityReview
    overallScore: float = Field(ge=1, le=10)
    summary: str
    prioritizedActions: list[PrioritizedAction]


# --- 4. Orchestrator-worker ---------------------------------------------------------------------
class PlanTask(BaseModel):
    id: str
    title: str
    description: str
    dependencies: list[str]
    estimatedHours: float = Field(ge=0)
    priority: Level
    type: Literal["backend", "frontend", "database", "testing", "documentation"]


class ImplementationPlan(BaseModel):
    tasks: list[PlanTask] = Field(min_length=1)
    timeline: str
    risks: list[str]


class TaskResult(BaseModel):
    taskId: str
    status: Literal["completed", "in_progress", "blocked"]
    output: str
    nextSteps: list[str]
    blockers: list[str]


class ExecutionStatus(BaseModel):
    completedTasks: int = Field(ge=0)
    totalTasks: int = Field(ge=0)
    blockers: list[str]
    nextMilestone: str


class OrchestrationSummary(BaseModel):
    plan: ImplementationPlan
    execution: ExecutionStatus
    taskResults: list[TaskResult]
    summary: str


# --- 5. Evaluator-optimizer ---------------------------------------------------------------------
class TranslationEvaluation(BaseModel):
    score: float = Field(ge=1, le=10)
    accuracy: float = Field(ge=1, le=10)
    naturalness: float = Field(ge=1, le=10)
    domainAppropriate: float = Field(ge=1, le=10)
    feedback: str
    specificIssues: list[str]


class TranslationIteration(BaseModel):
    iteration: int = Field(ge=1)
    translation: str
    evaluation: TranslationEvaluation


class TranslationResult(BaseModel):
    originalText: str
    targetLanguage: str
    domain: str
    finalTranslation: str
    iterations: list[TranslationIteration]
    improvementSummary: str
    finalScore: float = Field(ge=1, le=10)


# --- 6. Multi-step tool usage -------------------------------------------------------------------
class SolutionStep(BaseModel):
    step: int
    description: str
    calculation: str | None = None
    result: str | None = None


class MathSolution(BaseModel):
    problem: str
    solution: str
    steps: list[SolutionStep]
    finalAnswer: str
    verification: str


class CalculateArgs(BaseModel):
    expression: str = Field(
        description=(
            "Arithmetic expression to evaluate, e.g. '(3 + 4) * 2**10 / sqrt(16)'. "
            "Operators + - * / // % ** (or ^); functions sqrt, abs, round, floor, ceil, "
            "log, log10, exp, sin, cos, tan, min, max; constants pi, e."
        )
    )


class ValidateAnswerArgs(BaseModel):
    originalProblem: str = Field(description="The problem as stated.")
    proposedAnswer: str = Field(description="The answer to check, a number.")
    validationMethod: str = Field(
        description=(
            "An independent check: an arithmetic expression that should equal the answer "
            "(e.g. '17 * 23'), or an equation in x that the answer must satisfy when "
            "substituted for x (e.g. '2*x + 3 = 13')."
        )
    )
