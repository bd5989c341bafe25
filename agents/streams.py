"""A run's events as stream frames. One function for every format: the encoder decides what each
event becomes (the UI message stream sends everything; the text stream only the final JSON)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from core.encoders import StreamEncoder

from .context import RunContext, Workflow
from .events import (
    ResultDelta,
    ResultDone,
    RunCompleted,
    RunFailed,
    StepFinished,
    StepStarted,
    ToolInput,
    ToolOutput,
)
from .execution import run_events

RESULT_TEXT_ID = "result"


def step_data(event: StepStarted | StepFinished) -> dict[str, Any]:
    """The `data` of a `data-step` chunk."""
    if isinstance(event, StepStarted):
        return {
            "name": event.name,
            "status": "running",
            "output": None,
            "durationMs": None,
            "usage": None,
        }
    data: dict[str, Any] = {
        "name": event.name,
        "status": event.status,
        "output": event.output,
        "durationMs": event.duration_ms,
        "usage": event.usage.as_dict(),
    }
    if event.error:
        data["error"] = event.error
    return data


async def run_frames(
    ctx: RunContext, workflow: Workflow, encoder: StreamEncoder
) -> AsyncIterator[bytes]:
    """Run the workflow and yield its frames as each event happens."""
    run_id = str(ctx.run_id)
    if start := encoder.start(run_id):
        yield start
    text_open = False
    text_id = RESULT_TEXT_ID
    attempt = 1
    async with aclosing(run_events(ctx, workflow)) as events:
        async for event in events:
            frames: list[bytes] = []
            match event:
                case StepStarted() | StepFinished():
                    frames.append(encoder.data("step", step_data(event), data_id=event.step_id))
                case ToolInput(call_id=call_id, tool_name=tool_name, args=args):
                    frames.append(encoder.tool_input(call_id, tool_name, args))
                case ToolOutput(call_id=call_id, output=output):
                    frames.append(encoder.tool_output(call_id, output))
                case ResultDelta(text=text, restart=restart):
                    if restart and text_open:
                        # A retried answer: close the void text part, start a fresh one.
                        frames.append(encoder.text_end(text_id))
                        text_open = False
                        attempt += 1
                        text_id = f"{RESULT_TEXT_ID}-{attempt}"
                    if not text_open:
                        frames.append(encoder.text_start(text_id))
                        text_open = True
                    if text:
                        frames.append(encoder.text_delta(text_id, text))
                case ResultDone():
                    if text_open:
                        frames.append(encoder.text_end(text_id))
                        text_open = False
                case RunCompleted(result=result, usage=usage):
                    frames.append(encoder.data("result", result, data_id=run_id))
                    frames.append(
                        encoder.finish("stop", {"runId": run_id, "usage": usage.as_dict()})
                    )
                case RunFailed(error=error):
                    if text_open:
                        frames.append(encoder.text_end(text_id))
                        text_open = False
                    frames.append(encoder.error(error.message))
            for frame in frames:
                if frame:
                    yield frame
    if done := encoder.done():
        yield done
