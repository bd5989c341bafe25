"""Running one tool call the model asked for. Shared by the Gemini and offline providers.

A tool failure (unknown tool, invalid arguments, an exception in `run`) becomes
`{"error": "<message>"}` for the model and `is_error=True`; it never raises to the caller."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from .types import Tool, ToolCall, ToolResult

logger = logging.getLogger("llm.tools")


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error.get("loc", ())) or "arguments"
        problems.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(problems)


async def execute_tool_call(tools: Mapping[str, Tool], call: ToolCall) -> ToolResult:
    tool = tools.get(call.name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return ToolResult(
            call, {"error": f"Unknown tool {call.name!r} (available: {known})."}, True
        )
    try:
        args = tool.parameters.model_validate(call.args)
    except ValidationError as exc:
        message = f"Invalid arguments for {call.name}: {describe_validation_error(exc)}"
        return ToolResult(call, {"error": message}, True)
    try:
        output: Any = await tool.run(args)
    except Exception as exc:
        logger.warning("tool %s failed: %s", call.name, exc, exc_info=True)
        return ToolResult(call, {"error": str(exc) or type(exc).__name__}, True)
    if not isinstance(output, dict):
        output = {"result": output}
    return ToolResult(call, output, "error" in output)
