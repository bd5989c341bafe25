"""Every pattern completes end to end with the offline provider (the test default)."""

from __future__ import annotations

import pytest

from agents import schemas
from agents.models import AgentRun
from agents.patterns import PATTERNS

from .conftest import JSON, TEXT, of_type, post, read_body, result_of, sse_frames

BODIES = {
    "sequential": {"input": "a solar-powered phone charger"},
    "routing": {"query": "My API returns 500 errors since the last deploy"},
    "parallel": {"code": "def add(a, b):\n    return a + b\n"},
    "orchestrator": {"featureDescription": "Password reset by email"},
    "evaluator": {"text": "Hello world", "targetLanguage": "French", "domain": "marketing"},
    "tools": {"problem": "What is 2**10 + 3*4?"},
}
STEPS = {
    "sequential": ["InitialGeneration", "QualityEvaluation", "FinalPackaging"],
    "routing": ["QueryClassification", "SpecialistResponse"],
    "parallel": ["SecurityReview", "PerformanceReview", "MaintainabilityReview", "ReviewSummary"],
    "orchestrator": [
        "FeaturePlanning",
        "TaskExecution-Offline id for: Create a detailed implementation plan...",
        "TaskExecution-Offline id for: Create a detailed implementation plan...-2",
        "OrchestrationSummary",
    ],
    "evaluator": [
        "InitialTranslation",
        "Evaluation-1",
        "Improvement-1",
        "Evaluation-2",
        "Improvement-2",
        "Evaluation-3",
        "OptimizationSummary",
    ],
    "tools": ["ProblemSolving", "Solution"],
}

RESULTS = {
    "sequential": schemas.SequentialResult,
    "routing": schemas.RoutedResponse,
    "parallel": schemas.CodeReviewSummary,
    "orchestrator": schemas.OrchestrationSummary,
    "evaluator": schemas.TranslationResult,
    "tools": schemas.MathSolution,
}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
async def test_each_pattern_completes_offline(aclient, user, pattern):
    frames = await sse_frames(aclient, pattern, BODIES[pattern])

    assert frames[0]["type"] == "start"
    assert frames[-2]["type"] == "finish" and frames[-1] == "[DONE]"
    result = RESULTS[pattern].model_validate(result_of(frames))

    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    assert run.status == "complete"
    assert run.user_id == user.id
    assert run.final_output == result.model_dump(mode="json")
    steps = [step async for step in run.steps.order_by("position")]
    assert [s.name for s in steps] == STEPS[pattern]
    assert all(s.status == "complete" and s.finished_at for s in steps)
    assert run.total_tokens == sum(s.total_tokens for s in steps) > 0


async def test_offline_tool_loop_really_calls_the_tools(aclient):
    frames = await sse_frames(aclient, "tools", BODIES["tools"])
    outputs = [f["output"] for f in of_type(frames, "tool-output-available")]
    assert outputs[0]["result"] == 2**10 + 3 * 4
    assert outputs[1]["isValid"] is True


async def test_offline_json_document(aclient, user):
    response = await post(aclient, "routing", BODIES["routing"], accept=JSON)

    assert response.status_code == 200
    assert response["Content-Type"] == JSON
    document = response.json()
    assert (document["pattern"], document["status"]) == ("routing", "complete")
    assert document["input"] == BODIES["routing"]
    assert [s["name"] for s in document["steps"]] == STEPS["routing"]
    result = schemas.RoutedResponse.model_validate(document["final_output"])
    run = await AgentRun.objects.aget(id=document["id"])
    assert run.user_id == user.id
    assert run.final_output == result.model_dump(mode="json")


async def test_offline_plain_text_is_the_result_object(aclient):
    response = await post(aclient, "routing", BODIES["routing"], accept=TEXT)

    assert response.status_code == 200
    assert response["Content-Type"].startswith(TEXT)
    result = schemas.RoutedResponse.model_validate_json(await read_body(response))
    run = await AgentRun.objects.aget()
    assert run.status == "complete"
    assert result.model_dump(mode="json") == run.final_output
