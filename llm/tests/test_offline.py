"""OfflineProvider: deterministic, no network, schema-valid objects, real tool calls."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import BaseModel

from llm import (
    ChatMessage,
    FilePart,
    ObjectDelta,
    ObjectResult,
    ReasoningDelta,
    Source,
    StreamFinish,
    TextDelta,
    Tool,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopFinished,
    Usage,
    estimate_tokens,
    find_expression,
)
from llm.offline import OfflineProvider
from llm.tests.schemas import CalculateArgs, Review, Strict, ValidateArgs

provider = OfflineProvider(chunk_delay_ms=0)


async def collect(stream):
    return [event async for event in stream]


async def test_stream_is_deterministic_word_by_word():
    messages = [ChatMessage("system", "Be nice."), ChatMessage("user", "Tell me about tides")]

    first = await collect(provider.stream_chat(messages, model="any"))
    second = await collect(provider.stream_chat(messages, model="any"))

    assert first == second
    deltas = [e.text for e in first if isinstance(e, TextDelta)]
    reply = "".join(deltas)
    assert reply.startswith('You said: "Tell me about tides".')
    assert 30 <= len(reply.split()) <= 60
    assert all(d.endswith(" ") for d in deltas[:-1]) and " " not in deltas[-1]
    finish = first[-1]
    assert isinstance(finish, StreamFinish)
    assert (finish.reason, finish.model) == ("stop", "offline")
    assert finish.usage.output_tokens == len(reply) // 4 + 1
    assert finish.usage.total_tokens == finish.usage.input_tokens + finish.usage.output_tokens


async def test_different_messages_get_different_replies():
    a = await provider.generate_text("first question", model="any")
    b = await provider.generate_text("a rather different question", model="any")

    assert a.text != b.text
    assert a.model == "offline" and a.finish_reason == "stop"


async def test_generate_object_is_schema_valid_for_a_nested_model():
    result = await provider.generate_object(Review, "Review my pull request please", model="any")

    review = result.object
    assert isinstance(review, Review)
    assert review.verdict == "approve"  # first Literal value
    assert len(review.findings) == 2
    assert all(f.score == 8 and f.severity == "low" for f in review.findings)  # 8 in 1..10
    assert 0 <= review.confidence <= 1
    assert "Review my pull request please" in review.summary
    assert (
        await provider.generate_object(Review, "Review my pull request please", model="x")
    ) == result


async def test_generate_object_respects_exclusive_bounds():
    result = await provider.generate_object(Strict, "ratio", model="any")

    assert 0 < result.object.ratio < 1


async def test_stream_object_yields_partials_then_the_object():
    events = await collect(provider.stream_object(Review, "Review this", model="any"))

    deltas = [e for e in events if isinstance(e, ObjectDelta)]
    assert len(deltas) > 2
    assert isinstance(events[-1], ObjectResult)
    assert deltas[-1].partial == events[-1].object.model_dump(mode="json")
    assert Review.model_validate_json("".join(d.text for d in deltas)) == events[-1].object


async def test_run_tools_really_calls_calculate_then_validate_answer():
    calls = []

    async def calculate(args: BaseModel) -> dict:
        calls.append(("calculate", args.expression))
        return {"result": "1036", "expression": args.expression, "success": True}

    async def validate(args: BaseModel) -> dict:
        calls.append(("validateAnswer", args.proposedAnswer, args.validationMethod))
        return {"isValid": True, "confidence": 0.95}

    tools = [
        Tool("calculate", "Evaluate", CalculateArgs, calculate),
        Tool("validateAnswer", "Check", ValidateArgs, validate),
    ]
    prompt = "Solve this math problem step by step: what is 2**10 + (3*4)?\n1. Break it down"

    events = await collect(provider.run_tools(prompt, tools, model="any"))

    assert calls == [("calculate", "2**10 + (3*4)"), ("validateAnswer", "1036", "recompute")]
    assert [type(e) for e in events] == [
        ToolCallStarted,
        ToolCallFinished,
        ToolCallStarted,
        ToolCallFinished,
        ToolLoopFinished,
    ]
    done = events[-1]
    assert "1036" in done.text
    assert done.steps == 3 and len(done.results) == 2
    assert events[2].call.args["originalProblem"] == prompt


async def test_run_tools_reports_a_failing_tool_without_raising():
    async def calculate(args: BaseModel) -> dict:
        raise ValueError("bad expression")

    tools = [Tool("calculate", "Evaluate", CalculateArgs, calculate)]

    events = await collect(provider.run_tools("what is 6*7", tools, model="any"))

    assert events[1].result.is_error
    assert events[1].result.output == {"error": "bad expression"}
    assert isinstance(events[-1], ToolLoopFinished)


@pytest.mark.parametrize(
    ("text", "expression"),
    [
        ("What is 2**10?", "2**10"),
        ("Compute (15 + 27) * 3 - 8 / 2, please.", "(15 + 27) * 3 - 8 / 2"),
        ("1. Break it down 2. Solve 3^4", "3^4"),
        ("no math here, only 42", None),
    ],
)
def test_find_expression(text, expression):
    assert find_expression(text) == expression


async def test_reasoning_comes_first_and_is_never_text():
    events = await collect(provider.stream_chat([ChatMessage("user", "Why?")], model="any"))

    assert isinstance(events[0], ReasoningDelta)
    assert "offline provider" in events[0].text
    assert not any(isinstance(e, ReasoningDelta) for e in events[1:])
    reply = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert events[0].text not in reply


async def test_no_reasoning_when_thoughts_are_off():
    quiet = OfflineProvider(chunk_delay_ms=0, include_thoughts=False)

    events = await collect(quiet.stream_chat([ChatMessage("user", "Why?")], model="any"))

    assert isinstance(events[0], TextDelta)


async def test_attachments_are_acknowledged_by_type_and_size():
    files = (
        FilePart("image/png", b"\x89PNG" + b"0" * 2044, "att-1", "cat.png"),
        FilePart("application/pdf", b"%PDF" + b"0" * (3 * 1024 * 1024), "att-2"),
    )
    message = ChatMessage("user", "What is in these?", files=files)

    events = await collect(provider.stream_chat([message], model="any"))

    reply = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert reply.startswith("You attached image/png (2.0 KB) and application/pdf (3.0 MB). ")


async def test_sources_only_when_web_search_is_asked_for():
    question = [ChatMessage("user", "Latest news?")]

    searched = await collect(provider.stream_chat(question, model="any", web_search=True))
    plain = await collect(provider.stream_chat(question, model="any"))

    sources = [e for e in searched if isinstance(e, Source)]
    assert [s.source_id for s in sources] == ["source-1", "source-2"]
    assert all(s.url.startswith("https://") and s.title for s in sources)
    assert isinstance(searched[-1], StreamFinish)
    assert not any(isinstance(e, Source) for e in plain)


def test_usage_uses_the_one_token_estimate():
    assert estimate_tokens("x" * 40) == 11
    assert OfflineProvider._usage("x" * 40, "y" * 8) == Usage(11, 3, 14)


def test_importable_without_google_genai():
    code = (
        "import sys; sys.modules['google.genai'] = None\n"
        "import llm.offline, llm.registry\n"
        "assert 'google.genai' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=".")
