"""What a run tells its listener, in order: a step started or finished, a tool was called or
answered, a piece of the final object's JSON text, and how the run ended. The run context emits
them onto its queue; `agents.streams` turns them into stream frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llm import LLMError, Usage


@dataclass(frozen=True, slots=True)
class StepStarted:
    step_id: str
    name: str
    model: str


@dataclass(frozen=True, slots=True)
class StepFinished:
    step_id: str
    name: str
    status: str  # "complete" | "error"
    output: Any
    duration_ms: int
    usage: Usage
    cached: bool = False
    error: str = ""


@dataclass(frozen=True, slots=True)
class ToolInput:
    call_id: str
    tool_name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolOutput:
    call_id: str
    output: dict[str, Any]
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class ResultDelta:
    """The next piece of the final object's JSON text. `restart`: the model's first answer was
    invalid and is being retried; the text so far is void and starts again with this piece."""

    text: str
    restart: bool = False


@dataclass(frozen=True, slots=True)
class ResultDone:
    """The final object's JSON text is complete."""


@dataclass(frozen=True, slots=True)
class RunCompleted:
    result: dict[str, Any]
    usage: Usage


@dataclass(frozen=True, slots=True)
class RunFailed:
    error: RunError


RunEvent = (
    StepStarted
    | StepFinished
    | ToolInput
    | ToolOutput
    | ResultDelta
    | ResultDone
    | RunCompleted
    | RunFailed
)


@dataclass(frozen=True, slots=True)
class RunError:
    """Why a run failed, fit to show the client."""

    code: str
    message: str
    status: int

    @classmethod
    def from_exception(cls, exc: BaseException) -> RunError:
        if isinstance(exc, LLMError):
            return cls(exc.code, exc.safe_message, exc.status)
        return cls("agent_failed", "The agent run failed unexpectedly.", 500)
