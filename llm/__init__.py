"""Provider layer: the only code that talks to a model. Configured by `settings.LLM` (see
`llm.registry`); chat and agents call `get_provider()`, and `model_for(role)` names the model."""

from .base import LLMProvider
from .errors import (
    ContentBlocked,
    LLMError,
    ModelOutputInvalid,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
)
from .expressions import find_expression
from .registry import backend_label, build_provider, get_provider, model_for, warm_up
from .tokens import estimate_tokens
from .types import (
    ChatMessage,
    FilePart,
    ObjectDelta,
    ObjectResult,
    ReasoningDelta,
    Source,
    StreamEvent,
    StreamFinish,
    TextDelta,
    TextResult,
    Tool,
    ToolCall,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopFinished,
    ToolResult,
    Usage,
)

__all__ = [
    "ChatMessage",
    "ContentBlocked",
    "FilePart",
    "LLMError",
    "LLMProvider",
    "ModelOutputInvalid",
    "ModelRateLimited",
    "ModelRequestRejected",
    "ModelUnavailable",
    "ObjectDelta",
    "ObjectResult",
    "ReasoningDelta",
    "Source",
    "StreamEvent",
    "StreamFinish",
    "TextDelta",
    "TextResult",
    "Tool",
    "ToolCall",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolLoopFinished",
    "ToolResult",
    "Usage",
    "backend_label",
    "build_provider",
    "estimate_tokens",
    "find_expression",
    "get_provider",
    "model_for",
    "warm_up",
]
