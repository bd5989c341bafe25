"""Plain values the provider layer hands to the rest of the code. Nothing here knows Django or
google-genai."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

Role = Literal["user", "assistant", "system"]
# The AI SDK UI message stream's finish reasons.
FinishReason = Literal["stop", "length", "content-filter", "error", "other"]

SchemaT = TypeVar("SchemaT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file that goes to the model with its message: an image, a PDF, audio or text.
    `key` names the file for as long as its bytes do not change (the attachment's id): a provider
    may upload it once and refer to it in later calls."""

    media_type: str
    data: bytes
    key: str
    filename: str = ""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    #: Files sent with the message (user messages only), before its text.
    files: tuple[FilePart, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.total_tokens + other.total_tokens,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "totalTokens": self.total_tokens,
        }


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the model's text, in arrival order."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's thought summary (never part of the answer's text)."""

    text: str


@dataclass(frozen=True, slots=True)
class Source:
    """A web page the answer was grounded in (web search)."""

    source_id: str
    url: str
    title: str = ""


@dataclass(frozen=True, slots=True)
class StreamFinish:
    """The last event of a stream: why it ended, what it cost, which model answered."""

    reason: FinishReason
    usage: Usage
    model: str


StreamEvent = TextDelta | ReasoningDelta | Source | StreamFinish


@dataclass(frozen=True, slots=True)
class TextResult:
    text: str
    usage: Usage
    model: str
    finish_reason: FinishReason = "stop"


@dataclass(frozen=True, slots=True)
class ObjectResult(Generic[SchemaT]):
    """A validated structured answer."""

    object: SchemaT
    usage: Usage
    model: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    args: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolResult:
    call: ToolCall
    output: dict[str, Any]
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call. `parameters` is a pydantic model of its arguments;
    `run` receives the validated arguments and returns a JSON-able dict. An exception raised by
    `run` (or invalid arguments) becomes a tool error the model sees, never a crash."""

    name: str
    description: str
    parameters: type[BaseModel]
    run: Callable[[BaseModel], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """Tool-loop event: the model asked for a tool call (arguments complete)."""

    call: ToolCall


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """Tool-loop event: the tool ran; its output (or error) goes back to the model."""

    result: ToolResult


@dataclass(frozen=True, slots=True)
class ToolLoopFinished:
    """Tool-loop event: the model answered in text; `steps` model calls were made."""

    text: str
    usage: Usage
    model: str
    steps: int
    results: list[ToolResult] = field(default_factory=list)


ToolLoopEvent = ToolCallStarted | ToolCallFinished | ToolLoopFinished


@dataclass(frozen=True, slots=True)
class ObjectDelta:
    """stream_object event: the next piece of JSON text, and the partial object parsed so far
    (a dict, possibly incomplete)."""

    text: str
    partial: dict[str, Any]
    #: True on the first delta of a retried attempt (the first answer was not valid for the
    #: schema): drop the text received so far and start again from this delta.
    restart: bool = False
