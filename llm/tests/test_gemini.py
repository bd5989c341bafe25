"""The Gemini backend (wrapped by llm.resilience, as get_provider() builds it): the real
google-genai SDK against the local stand-in. Assertions are on what the caller got and on what the
stand-in received; nothing inside the SDK is mocked."""

from __future__ import annotations

import ast
import asyncio
import operator
import threading

import pytest
from pydantic import BaseModel

from llm import (
    ChatMessage,
    ContentBlocked,
    ModelOutputInvalid,
    ModelRateLimited,
    ModelRequestRejected,
    ModelUnavailable,
    ObjectDelta,
    ObjectResult,
    ReasoningDelta,
    StreamFinish,
    TextDelta,
    Tool,
    ToolCallFinished,
    ToolCallStarted,
    ToolLoopFinished,
    Usage,
    build_provider,
)
from llm.tests.schemas import CalculateArgs, Review, Strict
from tests.fixtures_gemini import standin_llm_settings
from tests.gemini_standin import (
    DEFAULT_SIGNATURE,
    blocked_reply,
    error_reply,
    function_call_reply,
    json_reply,
    text_reply,
    text_stream,
)

MODEL = "gemini-2.5-flash"
FALLBACK = "gemini-fallback"  # the gemini_provider fixture's fallback model
HELLO = [ChatMessage("user", "Hello")]


async def collect(stream):
    return [event async for event in stream]


def texts(events) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


# --- streaming chat ------------------------------------------------------------------------------


async def test_stream_chat_yields_deltas_in_order_then_one_finish(gemini_provider, gemini_standin):
    usage = {"promptTokenCount": 11, "candidatesTokenCount": 7, "totalTokenCount": 18}
    gemini_standin.enqueue(text_stream(["The ", "quick ", "fox."], usage=usage))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert texts(events) == ["The ", "quick ", "fox."]
    assert events[-1] == StreamFinish("stop", Usage(11, 7, 18), MODEL)
    assert sum(isinstance(e, StreamFinish) for e in events) == 1
    [request] = gemini_standin.requests
    assert request.action == "streamGenerateContent"
    assert request.query == {"alt": "sse"}
    assert request.model == MODEL
    assert request.headers["x-goog-api-key"] == "test-key"


async def test_stream_chat_sends_history_with_gemini_roles_and_system_instruction(
    gemini_provider, gemini_standin
):
    history = [
        ChatMessage("system", "Be terse."),
        ChatMessage("user", "Hi"),
        ChatMessage("assistant", "Hello! How can I help?"),
        ChatMessage("system", "Answer in English."),
        ChatMessage("user", "Tell me a joke"),
    ]

    await collect(gemini_provider.stream_chat(history, model=MODEL))

    [request] = gemini_standin.requests
    assert request.roles == ["user", "model", "user"]
    assert [c["parts"][0]["text"] for c in request.contents] == [
        "Hi",
        "Hello! How can I help?",
        "Tell me a joke",
    ]
    assert request.system_instruction == "Be terse.\n\nAnswer in English."


@pytest.mark.parametrize(
    ("gemini_reason", "ours"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content-filter"),
        ("RECITATION", "content-filter"),
        ("MALFORMED_FUNCTION_CALL", "other"),
    ],
)
async def test_finish_reasons_are_mapped(gemini_provider, gemini_standin, gemini_reason, ours):
    gemini_standin.enqueue(text_stream(["partial ", "answer"], finish=gemini_reason))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert events[-1].reason == ours


async def test_thought_parts_are_reasoning_never_text_and_their_tokens_count_as_output(
    gemini_provider, gemini_standin
):
    usage = {
        "promptTokenCount": 4,
        "candidatesTokenCount": 3,
        "thoughtsTokenCount": 20,
        "totalTokenCount": 27,
    }
    gemini_standin.enqueue(text_reply("Visible.", thought="Hidden reasoning", usage=usage))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert texts(events) == ["Visible."]
    assert [e for e in events if isinstance(e, ReasoningDelta)] == [
        ReasoningDelta("Hidden reasoning")
    ]
    assert isinstance(events[0], ReasoningDelta)
    assert events[-1].usage == Usage(4, 23, 27)


async def test_blocked_prompt_raises_content_blocked(gemini_provider, gemini_standin):
    gemini_standin.enqueue(blocked_reply("SAFETY"))

    with pytest.raises(ContentBlocked):
        await collect(gemini_provider.stream_chat(HELLO, model=MODEL))
    assert len(gemini_standin.requests) == 1


# --- faults before the first token ---------------------------------------------------------------


async def test_429_then_success_is_retried_by_the_sdk(gemini_provider, gemini_standin):
    gemini_standin.enqueue(error_reply(429), text_stream(["ok"]))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert texts(events) == ["ok"]
    assert [(r.model, r.status) for r in gemini_standin.requests] == [(MODEL, 429), (MODEL, 200)]


async def test_500s_before_streaming_are_retried_then_the_fallback_model_answers(
    gemini_provider, gemini_standin, call_logs
):
    gemini_standin.enqueue_for(MODEL, *[error_reply(500)] * 3)  # 1 try + 2 retries
    gemini_standin.enqueue_for(FALLBACK, text_stream(["from ", "fallback"]))

    events = await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert texts(events) == ["from ", "fallback"]
    assert events[-1].model == FALLBACK
    paths = [r.path for r in gemini_standin.requests]
    assert paths == [f"/v1/models/{MODEL}:streamGenerateContent"] * 3 + [
        f"/v1/models/{FALLBACK}:streamGenerateContent"
    ]
    [log] = call_logs()
    assert log.outcome == "ok"
    assert log.attempts == 4
    assert log.fallback_used is True


async def test_429_for_good_raises_rate_limited_with_the_retry_info_delay(
    gemini_provider, gemini_standin
):
    gemini_standin.handler = lambda request: error_reply(429, retry_delay="0.02s")

    with pytest.raises(ModelRateLimited) as raised:
        await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert raised.value.retry_after == pytest.approx(0.02)
    assert raised.value.status == 503
    models = [r.model for r in gemini_standin.requests]
    assert models == [MODEL] * 3 + [FALLBACK] * 3


async def test_retry_delay_is_honoured_once_when_there_is_no_fallback(gemini_standin):
    provider = build_provider(
        standin_llm_settings(gemini_standin.base_url, fallback=None, max_retries=0)
    )
    gemini_standin.enqueue(error_reply(429, retry_delay="0.03s"), text_stream(["late ", "ok"]))

    events = await collect(provider.stream_chat(HELLO, model=MODEL))

    assert texts(events) == ["late ", "ok"]
    first, second = gemini_standin.requests
    assert second.started - first.finished >= 0.03


async def test_a_rejected_request_is_neither_retried_nor_sent_to_the_fallback(
    gemini_provider, gemini_standin
):
    gemini_standin.enqueue(error_reply(400, message="* contents: contents is not specified"))

    with pytest.raises(ModelRequestRejected) as raised:
        await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    assert "contents is not specified" in raised.value.detail
    assert len(gemini_standin.requests) == 1


async def test_missing_model_is_rejected(gemini_provider, gemini_standin):
    gemini_standin.enqueue(error_reply(404))

    with pytest.raises(ModelRequestRejected):
        await gemini_provider.generate_text("hi", model="gemini-nope")


async def test_a_timeout_before_the_first_token_is_model_unavailable(gemini_standin):
    provider = build_provider(
        standin_llm_settings(gemini_standin.base_url, fallback=None, timeout_s=0.2, max_retries=0)
    )
    gemini_standin.enqueue(text_stream(["too late"], first_delay=3))

    with pytest.raises(ModelUnavailable):
        await collect(provider.stream_chat(HELLO, model=MODEL))
    assert await gemini_standin.wait_for(lambda: gemini_standin.requests[0].disconnected)


# --- faults after the first token ----------------------------------------------------------------


@pytest.mark.parametrize("raw_error", [False, True], ids=["data-event", "raw-json"])
async def test_an_error_frame_mid_stream_raises_after_the_deltas_without_retry(
    gemini_provider, gemini_standin, raw_error
):
    gemini_standin.enqueue(
        text_stream(["one ", "two ", "three"], error_after=2, raw_error=raw_error)
    )
    received = []

    with pytest.raises(ModelUnavailable):
        async for event in gemini_provider.stream_chat(HELLO, model=MODEL):
            received.append(event)

    assert texts(received) == ["one ", "two "]
    assert not any(isinstance(e, StreamFinish) for e in received)
    assert len(gemini_standin.requests) == 1


async def test_a_dropped_connection_mid_stream_is_model_unavailable(
    gemini_provider, gemini_standin
):
    gemini_standin.enqueue(text_stream(["one ", "two ", "three"], drop_after=1))
    received = []

    with pytest.raises(ModelUnavailable):
        async for event in gemini_provider.stream_chat(HELLO, model=MODEL):
            received.append(event)

    assert texts(received) == ["one "]
    assert len(gemini_standin.requests) == 1
    assert gemini_standin.requests[0].dropped


async def test_a_body_cut_in_the_middle_of_an_event_is_model_unavailable_after_the_deltas(
    gemini_provider, gemini_standin
):
    gemini_standin.enqueue(text_stream(["one ", "two ", "three"], truncate_after=2))
    received = []

    with pytest.raises(ModelUnavailable):
        async for event in gemini_provider.stream_chat(HELLO, model=MODEL):
            received.append(event)

    assert texts(received) == ["one ", "two "]  # every whole event, nothing of the cut one
    assert len(gemini_standin.requests) == 1
    assert gemini_standin.requests[0].dropped


# --- streaming behaviour -------------------------------------------------------------------------


async def test_first_delta_arrives_while_the_model_is_still_generating(
    gemini_provider, gemini_standin
):
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["first ", "second ", "third"], gate=gate))
    stream = gemini_provider.stream_chat(HELLO, model=MODEL)

    first = await anext(stream)

    assert first == TextDelta("first ")
    [request] = gemini_standin.requests
    assert request.finished is None and request.chunks_sent == 1
    gate.set()
    rest = await collect(stream)
    assert texts(rest) == ["second ", "third"]
    assert request.finished is not None


async def test_closing_the_stream_disconnects_from_the_model(gemini_provider, gemini_standin):
    gate = threading.Event()  # never set: the stand-in holds the rest of the answer
    gemini_standin.enqueue(text_stream(["first ", "never sent"], gate=gate))
    stream = gemini_provider.stream_chat(HELLO, model=MODEL)

    assert await anext(stream) == TextDelta("first ")
    await stream.aclose()

    request = gemini_standin.requests[0]
    assert await gemini_standin.wait_for(lambda: request.disconnected, timeout=5)
    assert request.chunks_sent == 1


async def test_cancelling_the_consumer_task_disconnects_from_the_model(
    gemini_provider, gemini_standin, call_logs
):
    gate = threading.Event()
    gemini_standin.enqueue(text_stream(["first ", "never sent"], gate=gate))
    got_first = asyncio.Event()

    async def consume():
        async for _event in gemini_provider.stream_chat(HELLO, model=MODEL):
            got_first.set()

    task = asyncio.create_task(consume())
    await got_first.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await gemini_standin.wait_for(lambda: gemini_standin.requests[0].disconnected)
    assert [r.outcome for r in call_logs()] == ["cancelled"]


async def test_call_tracking_does_not_leak_into_the_callers_context(
    gemini_provider, gemini_standin
):
    from llm.calllog import current_call

    stream = gemini_provider.stream_chat(HELLO, model=MODEL)
    assert isinstance(await anext(stream), TextDelta)
    assert current_call.get() is None  # between yields
    await collect(stream)
    await gemini_provider.generate_text("hi", model=MODEL)
    assert current_call.get() is None


async def test_one_log_line_per_call_without_the_api_key(
    gemini_provider, gemini_standin, caplog, call_logs
):
    usage = {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7}
    gemini_standin.enqueue(text_stream(["a", "b", "c", "d"], usage=usage))

    await collect(gemini_provider.stream_chat(HELLO, model=MODEL))

    [record] = call_logs()
    assert record.getMessage().startswith("model_call provider=gemini operation=stream_chat")
    assert (record.provider, record.model, record.operation, record.outcome) == (
        "gemini",
        MODEL,
        "stream_chat",
        "ok",
    )
    assert (record.input_tokens, record.output_tokens, record.attempts) == (5, 2, 1)
    assert record.latency_ms >= 0
    assert "test-key" not in caplog.text
    assert "test-key" not in repr(gemini_provider)


# --- text and structured output ------------------------------------------------------------------


async def test_generate_text(gemini_provider, gemini_standin):
    gemini_standin.enqueue(text_stream(["Paris ", "is the capital."]))

    result = await gemini_provider.generate_text("Capital of France?", model=MODEL, system="Terse.")

    assert result.text == "Paris is the capital."
    assert result.model == MODEL and result.finish_reason == "stop"
    [request] = gemini_standin.requests
    assert request.action == "generateContent"
    assert request.system_instruction == "Terse."


async def test_concurrent_calls_are_in_flight_together(gemini_provider, gemini_standin):
    gate = threading.Event()  # the stand-in answers none of them until all three have arrived
    replies = [text_reply(f"answer {i}") for i in range(3)]
    for reply in replies:
        reply.gate = gate
    gemini_standin.enqueue(*replies)

    calls = asyncio.gather(*(gemini_provider.generate_text(f"q{i}", model=MODEL) for i in range(3)))
    all_waiting = await gemini_standin.wait_for(lambda: gemini_standin.in_flight == 3)
    gate.set()
    results = await calls

    assert all_waiting
    assert sorted(r.text for r in results) == ["answer 0", "answer 1", "answer 2"]


REVIEW = {
    "summary": "Looks fine",
    "verdict": "approve",
    "confidence": 0.9,
    "findings": [{"title": "Naming", "severity": "low", "score": 3}],
    "tags": ["style"],
}


async def test_generate_object_sends_the_response_schema_and_validates(
    gemini_provider, gemini_standin
):
    gemini_standin.enqueue(json_reply(REVIEW))

    result = await gemini_provider.generate_object(Review, "Review this", model=MODEL)

    assert isinstance(result, ObjectResult)
    assert result.object == Review.model_validate(REVIEW)
    config = gemini_standin.requests[0].generation_config
    assert config["responseMimeType"] == "application/json"
    schema = config["responseSchema"]
    assert schema["type"] == "OBJECT"
    assert schema["properties"]["verdict"]["enum"] == ["approve", "revise"]
    finding = schema["properties"]["findings"]["items"]
    assert finding["type"] == "OBJECT"
    assert finding["properties"]["score"]["minimum"] == 1
    assert finding["properties"]["score"]["maximum"] == 10


async def test_generate_object_retries_once_on_invalid_json(gemini_provider, gemini_standin):
    gemini_standin.enqueue(json_reply('{"summary": "cut off'), json_reply(REVIEW))

    result = await gemini_provider.generate_object(Review, "Review this", model=MODEL)

    assert result.object.verdict == "approve"
    assert len(gemini_standin.requests) == 2


async def test_generate_object_gives_up_after_two_invalid_answers(gemini_provider, gemini_standin):
    wrong_shape = {**REVIEW, "verdict": "maybe"}
    gemini_standin.enqueue(json_reply("not json at all"), json_reply(wrong_shape))

    with pytest.raises(ModelOutputInvalid):
        await gemini_provider.generate_object(Review, "Review this", model=MODEL)
    assert len(gemini_standin.requests) == 2


async def test_a_schema_the_sdk_cannot_convert_goes_as_json_schema(gemini_provider, gemini_standin):
    gemini_standin.enqueue(json_reply({"ratio": 0.5}))

    result = await gemini_provider.generate_object(Strict, "Ratio?", model=MODEL)

    assert result.object.ratio == 0.5
    config = gemini_standin.requests[0].generation_config
    assert "responseSchema" not in config
    assert config["responseJsonSchema"]["properties"]["ratio"]["exclusiveMinimum"] == 0


async def test_stream_object_yields_partials_then_the_object(gemini_provider, gemini_standin):
    gemini_standin.enqueue(json_reply(REVIEW, pieces=6))

    events = await collect(gemini_provider.stream_object(Review, "Review this", model=MODEL))

    deltas = [e for e in events if isinstance(e, ObjectDelta)]
    assert len(deltas) == 6
    assert "".join(d.text for d in deltas) == json_reply(REVIEW).chunks[0][0]["text"]
    assert deltas[0].partial.keys() <= deltas[-1].partial.keys()
    assert deltas[-1].partial == REVIEW
    assert not any(d.restart for d in deltas)
    assert isinstance(events[-1], ObjectResult)
    assert events[-1].object == Review.model_validate(REVIEW)
    assert gemini_standin.requests[0].action == "streamGenerateContent"


async def test_stream_object_restarts_once_after_invalid_output(gemini_provider, gemini_standin):
    gemini_standin.enqueue(json_reply('{"summary": 5}', pieces=2), json_reply(REVIEW, pieces=3))

    events = await collect(gemini_provider.stream_object(Review, "Review this", model=MODEL))

    restarts = [e.restart for e in events if isinstance(e, ObjectDelta)]
    assert restarts == [False, False, True, False, False]
    assert events[-1].object.summary == "Looks fine"
    assert len(gemini_standin.requests) == 2


async def test_generate_object_blocked_prompt(gemini_provider, gemini_standin):
    gemini_standin.enqueue(blocked_reply())

    with pytest.raises(ContentBlocked):
        await gemini_provider.generate_object(Review, "Review this", model=MODEL)


# --- tools ---------------------------------------------------------------------------------------

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))
    raise ValueError("unsupported expression")


async def calculate(args: BaseModel) -> dict:
    expression = args.expression.replace("^", "**")
    return {"result": _evaluate(ast.parse(expression, mode="eval")), "expression": args.expression}


CALCULATE = Tool("calculate", "Evaluate arithmetic", CalculateArgs, calculate)


async def test_run_tools_sends_the_tool_result_back_and_finishes_with_text(
    gemini_provider, gemini_standin
):
    gemini_standin.enqueue(
        function_call_reply("calculate", {"expression": "2**10"}),
        text_reply("2**10 is 1024."),
    )

    events = await collect(
        gemini_provider.run_tools("What is 2**10?", [CALCULATE], model=MODEL, system="Use tools.")
    )

    started, finished, done = events
    assert isinstance(started, ToolCallStarted)
    assert started.call.name == "calculate" and started.call.args == {"expression": "2**10"}
    assert isinstance(finished, ToolCallFinished)
    assert finished.result.output["result"] == 1024 and not finished.result.is_error
    assert isinstance(done, ToolLoopFinished)
    assert (done.text, done.steps, done.results) == ("2**10 is 1024.", 2, [finished.result])

    first, second = gemini_standin.requests
    [declaration] = first.body["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "calculate"
    assert declaration["parametersJsonSchema"]["required"] == ["expression"]
    assert first.body["toolConfig"]["functionCallingConfig"]["mode"] == "AUTO"
    assert second.roles == ["user", "model", "user"]
    [model_call] = second.parts("functionCall")
    assert model_call == {"name": "calculate", "args": {"expression": "2**10"}}
    model_turn = second.contents[1]["parts"][0]
    assert model_turn["thoughtSignature"] == DEFAULT_SIGNATURE
    [response] = second.function_responses
    assert response["name"] == "calculate"
    assert response["response"]["result"] == 1024


async def test_a_failing_tool_is_reported_to_the_model_and_the_loop_goes_on(
    gemini_provider, gemini_standin
):
    async def broken(args):
        raise RuntimeError("calculator on fire")

    tools = [CALCULATE, Tool("broken", "Always fails", CalculateArgs, broken)]
    gemini_standin.enqueue(
        function_call_reply("broken", {"expression": "1+1"}),
        function_call_reply("calculate", {"wrong": "args"}),
        function_call_reply("calculate", {"expression": "1+1"}),
        text_reply("2"),
    )

    events = await collect(gemini_provider.run_tools("1+1?", tools, model=MODEL))

    done = events[-1]
    assert done.text == "2" and done.steps == 4
    assert [r.is_error for r in done.results] == [True, True, False]
    assert done.results[0].output == {"error": "calculator on fire"}
    assert "expression" in done.results[1].output["error"]
    requests = gemini_standin.requests
    assert requests[1].function_responses[-1]["response"] == {"error": "calculator on fire"}
    assert "error" in requests[2].function_responses[-1]["response"]


async def test_run_tools_stops_after_max_steps(gemini_provider, gemini_standin):
    gemini_standin.handler = lambda request: function_call_reply("calculate", {"expression": "1+1"})

    events = await collect(gemini_provider.run_tools("loop", [CALCULATE], model=MODEL, max_steps=3))

    done = events[-1]
    assert isinstance(done, ToolLoopFinished)
    assert done.steps == 3 and len(done.results) == 2
    requests = gemini_standin.requests
    assert len(requests) == 3
    modes = [r.body["toolConfig"]["functionCallingConfig"]["mode"] for r in requests]
    assert modes == ["AUTO", "AUTO", "NONE"]


async def test_run_tools_usage_is_summed_over_model_calls(gemini_provider, gemini_standin):
    usage = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}
    gemini_standin.enqueue(
        function_call_reply("calculate", {"expression": "3*3"}, usage=usage),
        text_reply("9", usage=usage),
    )

    events = await collect(gemini_provider.run_tools("3*3?", [CALCULATE], model=MODEL))

    assert events[-1].usage == Usage(20, 10, 30)
