"""The HTTP contract of the agent endpoints: response formats, validation, auth, ownership,
failures, disconnects, caching and the OpenAPI schema. Model calls go to the Gemini stand-in
through the real SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import pytest
from django.core.cache import cache

from agents import schemas
from agents.models import AgentRun, AgentStep
from llm import ModelRequestRejected
from tests.gemini_standin import error_reply, json_reply, text_reply
from tests.sse import parse_sse
from usage.models import UsageRecord

from .conftest import (
    JSON,
    SSE,
    TEXT,
    client_for,
    example,
    get,
    of_type,
    post,
    read_body,
    result_of,
    result_text,
    sse_frames,
    step_frames,
    types_of,
)

pytestmark = pytest.mark.django_db(transaction=True)

EVALUATION = {"score": 8, "feedback": "Good", "improvements": []}
FINAL = example(schemas.SequentialResult, originalContent="Copy v1")
BODY = {"input": "a solar charger"}


def script_sequential(standin):
    standin.enqueue(text_reply("Copy v1"), json_reply(EVALUATION), json_reply(FINAL, pieces=3))


# --- the three response formats ----------------------------------------------------------------
@pytest.mark.usefixtures("gemini_provider_settings")
async def test_event_stream_frames_in_order(aclient, gemini_standin):
    script_sequential(gemini_standin)

    response = await post(aclient, "sequential", BODY, accept=SSE)

    assert response["Content-Type"] == "text/event-stream"
    assert response["x-vercel-ai-ui-message-stream"] == "v1"
    assert response["Cache-Control"] == "no-cache"
    frames = parse_sse(await read_body(response))
    assert types_of(frames) == [
        "start",
        *["data-step"] * 5,  # two steps run and complete, the final one starts
        "text-start",
        *["text-delta"] * 3,
        "text-end",
        "data-step",  # the final step completes
        "data-result",
        "finish",
        "[DONE]",
    ]
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    steps = [s async for s in run.steps.order_by("position")]
    running, complete = frames[1], frames[2]
    assert running == {
        "type": "data-step",
        "id": str(steps[0].id),
        "data": {
            "name": "InitialGeneration",
            "status": "running",
            "output": None,
            "durationMs": None,
            "usage": None,
        },
    }
    assert complete["id"] == str(steps[0].id)
    assert complete["data"]["status"] == "complete"
    assert complete["data"]["output"] == "Copy v1"
    assert isinstance(complete["data"]["durationMs"], int)
    assert complete["data"]["usage"]["totalTokens"] == steps[0].total_tokens > 0
    assert frames[4]["data"]["output"] == EVALUATION
    assert {f["id"] for f in of_type(frames, "text-delta")} == {"result"}
    assert json.loads(result_text(frames)) == FINAL
    assert of_type(frames, "data-result") == [
        {"type": "data-result", "id": str(run.id), "data": FINAL}
    ]
    finish = of_type(frames, "finish")[0]
    assert finish["finishReason"] == "stop"
    assert finish["messageMetadata"]["runId"] == str(run.id)
    assert finish["messageMetadata"]["usage"]["totalTokens"] == run.total_tokens


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_json_document_is_the_finished_run(aclient, gemini_standin):
    script_sequential(gemini_standin)

    response = await post(aclient, "sequential", BODY, accept=JSON)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    document = response.json()
    assert document["status"] == "complete"
    assert document["pattern"] == "sequential"
    assert document["input"] == BODY
    assert document["final_output"] == FINAL
    assert [s["name"] for s in document["steps"]] == [
        "InitialGeneration",
        "QualityEvaluation",
        "FinalPackaging",
    ]
    assert document["steps"][1]["output"] == EVALUATION
    assert document["steps"][1]["model"] == "gemini-2.5-flash"
    detail = await get(aclient, f"/api/agents/runs/{document['id']}/")
    assert detail.json() == document


@pytest.mark.parametrize("accept", [TEXT, "*/*", ""])
@pytest.mark.usefixtures("gemini_provider_settings")
async def test_plain_text_is_the_object_json_only(aclient, gemini_standin, accept):
    script_sequential(gemini_standin)

    response = await post(aclient, "sequential", BODY, accept=accept)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert (
        schemas.SequentialResult.model_validate_json(await read_body(response)).model_dump(
            mode="json"
        )
        == FINAL
    )


# --- validation and auth -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "body", "field"),
    [
        ("sequential", {}, "input"),
        ("sequential", {"input": ""}, "input"),
        ("sequential", {"input": 123}, "input"),
        ("routing", {"query": ["a list"]}, "query"),
        ("parallel", {"code": None}, "code"),
        ("orchestrator", {"feature": "wrong name"}, "featureDescription"),
        ("evaluator", {"text": "Hi", "targetLanguage": "French"}, "domain"),
        ("tools", {"problem": {"nested": 1}}, "problem"),
        ("tools", ["not", "an", "object"], "non_field_errors"),
    ],
)
async def test_invalid_bodies_are_400_before_anything_runs(aclient, pattern, body, field):
    for accept in (SSE, JSON, TEXT):
        response = await post(aclient, pattern, body, accept=accept)
        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert field in error["details"]
    assert await AgentRun.objects.acount() == 0


async def test_oversized_input_is_400(aclient, settings):
    settings.AGENT_MAX_INPUT_CHARS = 50
    response = await post(aclient, "sequential", {"input": "x" * 51}, accept=SSE)
    assert response.status_code == 400
    assert "too long" in json.dumps(response.json())
    response = await post(
        aclient,
        "evaluator",
        {"text": "x" * 30, "targetLanguage": "French", "domain": "y" * 30},
        accept=SSE,
    )
    assert response.status_code == 400
    assert await AgentRun.objects.acount() == 0
    assert (await post(aclient, "sequential", {"input": "x" * 50}, accept=JSON)).status_code == 200


async def test_malformed_json_is_400(aclient):
    response = await aclient.post(
        "/api/agents/routing/",
        data="{not json",
        content_type="application/json",
        headers={**aclient.auth, "Accept": SSE},
    )
    assert response.status_code == 400
    assert await AgentRun.objects.acount() == 0


@pytest.mark.parametrize("pattern", ["sequential", "tools"])
async def test_requires_a_token(pattern):
    from django.test import AsyncClient

    response = await post(AsyncClient(), pattern, {"input": "x", "problem": "1+1"}, accept=SSE)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert (await AsyncClient().get("/api/agents/runs/")).status_code == 401


async def test_rate_limited(aclient, settings):
    settings.AGENT_RATE_LIMIT = "2/m"
    statuses = [
        (await post(aclient, "routing", {"query": "hi"}, accept=JSON)).status_code for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


# --- run history -------------------------------------------------------------------------------
async def test_runs_are_listed_newest_first_and_owner_only(aclient, other_user):
    first = (await post(aclient, "routing", {"query": "first"}, accept=JSON)).json()
    second = (await post(aclient, "tools", {"problem": "1+1"}, accept=JSON)).json()
    other = client_for(other_user)
    theirs = (await post(other, "routing", {"query": "mine"}, accept=JSON)).json()

    page = (await get(aclient, "/api/agents/runs/")).json()
    assert page["count"] == 2
    assert [r["id"] for r in page["results"]] == [second["id"], first["id"]]
    assert page["results"][0]["step_count"] == 2
    assert page["results"][0]["pattern"] == "tools"

    assert (await get(aclient, f"/api/agents/runs/{first['id']}/")).status_code == 200
    response = await get(aclient, f"/api/agents/runs/{theirs['id']}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert (await get(aclient, "/api/agents/runs/not-a-uuid/")).status_code == 404
    assert [r["id"] for r in (await get(other, "/api/agents/runs/")).json()["results"]] == [
        theirs["id"]
    ]


# --- failures ----------------------------------------------------------------------------------
@pytest.mark.usefixtures("gemini_provider_settings")
async def test_a_failing_step_ends_the_run_with_an_error_chunk(aclient, gemini_standin):
    gemini_standin.enqueue(text_reply("Copy v1"), error_reply(400, message="secret internals"))

    frames = await sse_frames(aclient, "sequential", BODY)

    assert step_frames(frames) == [
        ("InitialGeneration", "running"),
        ("InitialGeneration", "complete"),
        ("QualityEvaluation", "running"),
        ("QualityEvaluation", "error"),
    ]
    assert frames[-2] == {"type": "error", "errorText": ModelRequestRejected.safe_message}
    assert frames[-1] == "[DONE]"
    assert "secret internals" not in json.dumps(frames)
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    assert run.status == "error"
    assert run.error == ModelRequestRejected.safe_message
    assert run.final_output is None and run.finished_at
    steps = [(s.name, s.status, s.error) async for s in run.steps.order_by("position")]
    assert steps == [
        ("InitialGeneration", "complete", ""),
        ("QualityEvaluation", "error", ModelRequestRejected.safe_message),
    ]


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_a_failing_step_as_json_is_an_error_with_the_run_id(aclient, gemini_standin):
    gemini_standin.enqueue(text_reply("Copy v1"), error_reply(400))

    response = await post(aclient, "sequential", BODY, accept=JSON)

    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "model_request_rejected"
    run = await AgentRun.objects.aget(id=error["details"]["run_id"])
    assert run.status == "error"
    assert await run.steps.filter(status="complete").acount() == 1


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_a_failing_parallel_review_cancels_its_siblings(aclient, gemini_standin):
    held = threading.Event()  # the siblings' answers never come while the run is on

    def handler(request):
        if "security review" in request.last_user_text:
            return error_reply(400)
        reply = json_reply(example(schemas.PerformanceReview))
        reply.gate = held
        return reply

    gemini_standin.handler = handler

    try:
        frames = await sse_frames(aclient, "parallel", {"code": "x = 1"})
    finally:
        held.set()

    assert frames[-2]["type"] == "error"
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    statuses = {s.name: s.status async for s in run.steps.all()}
    assert statuses == {
        "SecurityReview": "error",
        "PerformanceReview": "interrupted",
        "MaintainabilityReview": "interrupted",
    }
    assert run.status == "error"


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_client_disconnect_interrupts_the_run(aclient, gemini_standin):
    held = threading.Event()  # the evaluation's answer never comes while the client is there
    evaluation = json_reply(EVALUATION)
    evaluation.gate = held
    gemini_standin.enqueue(text_reply("Copy v1"), evaluation)
    response = await post(aclient, "sequential", BODY, accept=SSE)
    received: list[bytes] = []
    evaluating = asyncio.Event()

    async def consume():
        async for chunk in response.streaming_content:
            received.append(chunk)
            if b'"name":"QualityEvaluation","status":"running"' in chunk:
                evaluating.set()

    reader = asyncio.create_task(consume())
    await asyncio.wait_for(evaluating.wait(), 10)
    assert await gemini_standin.wait_for(lambda: len(gemini_standin.requests) == 2)
    reader.cancel()  # what the ASGI handler does when the client goes away
    with contextlib.suppress(asyncio.CancelledError):
        await reader

    run_id = json.loads(received[0].removeprefix(b"data: "))["messageId"]
    run = await AgentRun.objects.aget(id=run_id)
    assert run.status == "interrupted" and run.finished_at
    steps = [(s.name, s.status) async for s in run.steps.order_by("position")]
    assert steps == [("InitialGeneration", "complete"), ("QualityEvaluation", "interrupted")]
    # The model request in flight was cancelled too.
    evaluation_request = gemini_standin.requests[1]
    assert await gemini_standin.wait_for(lambda: evaluation_request.disconnected)
    held.set()


# --- caching and usage -------------------------------------------------------------------------
@pytest.mark.usefixtures("gemini_provider_settings")
async def test_identical_steps_are_served_from_the_cache(aclient, gemini_standin, user):
    script_sequential(gemini_standin)
    first = parse_sse(await read_body(await post(aclient, "sequential", BODY)))
    requests_first = len(gemini_standin.requests)
    usage_first = await UsageRecord.objects.filter(user=user).acount()
    assert requests_first == 3 and usage_first == 3
    assert {r.endpoint async for r in UsageRecord.objects.all()} == {"agents:sequential"}

    second = parse_sse(await read_body(await post(aclient, "sequential", BODY)))

    assert len(gemini_standin.requests) == requests_first  # nothing new reached the model
    assert result_of(second) == result_of(first)
    assert json.loads(result_text(second)) == FINAL
    run = await AgentRun.objects.aget(id=second[0]["messageId"])
    steps = [s async for s in run.steps.order_by("position")]
    assert [s.name for s in steps] == ["InitialGeneration", "QualityEvaluation", "FinalPackaging"]
    assert all(s.cached and s.total_tokens == 0 and s.status == "complete" for s in steps)
    assert run.total_tokens == 0
    assert await UsageRecord.objects.filter(user=user).acount() == usage_first

    cache.clear()
    script_sequential(gemini_standin)
    await read_body(await post(aclient, "sequential", BODY))
    assert len(gemini_standin.requests) == 2 * requests_first


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_the_step_cache_is_per_user(aclient, gemini_standin, user, other_user):
    """A cache hit must not tell one user that another submitted the same input (issue 10, #15)."""
    script_sequential(gemini_standin)
    await read_body(await post(aclient, "sequential", BODY))
    assert len(gemini_standin.requests) == 3

    script_sequential(gemini_standin)
    theirs = parse_sse(await read_body(await post(client_for(other_user), "sequential", BODY)))

    assert len(gemini_standin.requests) == 6  # every step of theirs reached the model
    assert step_frames(theirs) == [
        (name, status)
        for name in ("InitialGeneration", "QualityEvaluation", "FinalPackaging")
        for status in ("running", "complete")
    ]
    document = (
        await get(client_for(other_user), f"/api/agents/runs/{theirs[0]['messageId']}/")
    ).json()
    assert [step["cached"] for step in document["steps"]] == [False] * 3
    assert await UsageRecord.objects.filter(user=other_user).acount() == 3

    # Each user's own repeat is still served from their cache.
    mine = parse_sse(await read_body(await post(aclient, "sequential", BODY)))
    again = parse_sse(await read_body(await post(client_for(other_user), "sequential", BODY)))
    assert len(gemini_standin.requests) == 6
    for client, frames in ((aclient, mine), (client_for(other_user), again)):
        document = (await get(client, f"/api/agents/runs/{frames[0]['messageId']}/")).json()
        assert [step["cached"] for step in document["steps"]] == [True] * 3


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_a_changed_input_is_not_a_cache_hit(aclient, gemini_standin):
    await read_body(await post(aclient, "routing", {"query": "one"}))
    count = len(gemini_standin.requests)
    await read_body(await post(aclient, "routing", {"query": "two"}))
    assert len(gemini_standin.requests) == 2 * count
    assert not await AgentStep.objects.filter(cached=True).aexists()


# --- OpenAPI -----------------------------------------------------------------------------------
def test_schema_documents_the_agent_endpoints(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    paths = schema["paths"]
    for pattern, field in [
        ("sequential", "input"),
        ("routing", "query"),
        ("parallel", "code"),
        ("orchestrator", "featureDescription"),
        ("evaluator", "targetLanguage"),
        ("tools", "problem"),
    ]:
        operation = paths[f"/api/agents/{pattern}/"]["post"]
        assert operation["operationId"] == f"agents_{pattern}"
        ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        component = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]
        assert field in component["properties"]
        assert set(operation["responses"]["200"]["content"]) == {
            "application/json",
            "text/event-stream",
            "text/plain",
        }
    assert "/api/agents/runs/" in paths and "/api/agents/runs/{id}/" in paths


@pytest.mark.usefixtures("gemini_provider_settings")
async def test_an_invalid_final_answer_is_retried_as_a_new_text_part(aclient, gemini_standin):
    gemini_standin.enqueue(
        text_reply("Copy v1"), json_reply(EVALUATION), json_reply('{"oops": '), json_reply(FINAL)
    )

    frames = await sse_frames(aclient, "sequential", BODY)

    text_frames = [f for f in frames if isinstance(f, dict) and f["type"].startswith("text-")]
    assert [(f["type"], f["id"]) for f in text_frames] == [
        ("text-start", "result"),
        ("text-delta", "result"),
        ("text-end", "result"),
        ("text-start", "result-2"),
        ("text-delta", "result-2"),
        ("text-end", "result-2"),
    ]
    assert json.loads(text_frames[4]["delta"]) == FINAL
    assert result_of(frames) == FINAL
