"""Provider layer: the only code that talks to Gemini. See `llm.base.LLMProvider`."""

from .base import LLMProvider
from .errors import (
    ContentBlocked,
    LLMError,
    ModelOutputInvalid,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
)
from .registry import get_provider
from .types import (
    ChatMessage,
    ObjectDelta,
    ObjectResult,
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
    "LLMError",
    "LLMProvider",
    "ModelOutputInvalid",
    "ModelRateLimited",
    "ModelRequestRejected",
    "ModelUnavailable",
    "ObjectDelta",
    "ObjectResult",
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
    "get_provider",
]
