"""pydantic models the provider tests use as response schemas and tool parameters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Finding(BaseModel):
    title: str
    severity: Literal["low", "medium", "high"]
    score: int = Field(ge=1, le=10)


class Review(BaseModel):
    summary: str
    verdict: Literal["approve", "revise"]
    confidence: float = Field(ge=0, le=1)
    findings: list[Finding]
    tags: list[str] = Field(default_factory=list)
    note: str | None = None


class Strict(BaseModel):
    """gt/lt bounds: google-genai's response_schema conversion rejects these."""

    ratio: float = Field(gt=0, lt=1)


class CalculateArgs(BaseModel):
    expression: str = Field(description="Mathematical expression to evaluate")


class ValidateArgs(BaseModel):
    originalProblem: str
    proposedAnswer: str
    validationMethod: str
