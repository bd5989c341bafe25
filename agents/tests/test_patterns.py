"""The six patterns against the Gemini stand-in, driven through the real google-genai SDK: the steps
in order, what each step sent (model, prompt, response schema), the branches and bounds of each
pattern, the final object, and what was saved."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from agents import schemas
from agents.models import AgentRun
from tests.gemini_standin import (
    Reply,
    error_reply,
    function_call_reply,
    json_reply,
    text_reply,
)

from .conftest import (
    calls,
    example,
    of_type,
    result_of,
    result_text,
    schema_sent,
    sse_frames,
    step_frames,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("gemini_provider_settings"),
]

FAST, COMPLEX = "gemini-2.5-flash", "gemini-2.5-pro"
GEN, STREAM = "generateContent", "streamGenerateContent"


async def steps_of(frames) -> list[tuple[str, str, str]]:
    """(name, status, model) of the saved steps of the run the frames belong to."""
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    return [(s.name, s.status, s.model) async for s in run.steps.order_by("position")]


def gated(reply: Reply, gate: threading.Event) -> Reply:
    """`reply`, held by the stand-in until `gate` is set."""
    reply.gate = gate
    return reply


def ran(*names: str) -> list[tuple[str, str]]:
    """The data-step chunks of steps that ran one after another."""
    return [(name, status) for name in names for status in ("running", "complete")]


# --- sequential --------------------------------------------------------------------------------
EVALUATION_LOW = {"score": 5, "feedback": "Too vague", "improvements": ["Add benefits", "Add CTA"]}
EVALUATION_HIGH = {"score": 8, "feedback": "Strong", "improvements": []}


async def test_sequential_improves_when_score_below_7(aclient, gemini_standin):
    final = example(schemas.SequentialResult, originalContent="Copy v1", improvedContent="Copy v2")
    gemini_standin.enqueue(
        text_reply("Copy v1"), json_reply(EVALUATION_LOW), json_reply(final, pieces=4)
    )

    frames = await sse_frames(aclient, "sequential", {"input": "a solar charger"})

    assert step_frames(frames) == ran("InitialGeneration", "QualityEvaluation", "Improvement")
    assert calls(gemini_standin) == [(COMPLEX, GEN), (FAST, GEN), (COMPLEX, STREAM)]
    generate, evaluate, improve = gemini_standin.requests
    assert generate.last_user_text == (
        "Create compelling marketing copy for: a solar charger. "
        "Focus on benefits and emotional appeal."
    )
    assert schema_sent(generate) is None
    assert "Evaluate this marketing copy on a scale of 1-10:" in evaluate.last_user_text
    assert "Copy v1" in evaluate.last_user_text
    assert schema_sent(evaluate)["properties"]["score"]["minimum"] == 1
    assert "improve this marketing copy" in improve.last_user_text
    assert "Score: 5/10" in improve.last_user_text
    assert "Specific improvements needed: Add benefits, Add CTA" in improve.last_user_text
    assert set(schema_sent(improve)["properties"]) >= {"originalContent", "processingSteps"}

    assert result_of(frames) == final
    assert json.loads(result_text(frames)) == final
    assert await steps_of(frames) == [
        ("InitialGeneration", "complete", COMPLEX),
        ("QualityEvaluation", "complete", FAST),
        ("Improvement", "complete", COMPLEX),
    ]
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    assert (run.pattern, run.status) == ("sequential", "complete")
    assert run.input == {"input": "a solar charger"}
    assert run.final_output == final and run.finished_at and run.total_tokens > 0


async def test_sequential_packages_without_improving_at_score_7_or_more(aclient, gemini_standin):
    final = example(schemas.SequentialResult, originalContent="Copy v1")
    gemini_standin.enqueue(text_reply("Copy v1"), json_reply(EVALUATION_HIGH), json_reply(final))

    frames = await sse_frames(aclient, "sequential", {"input": "a solar charger"})

    assert step_frames(frames) == ran("InitialGeneration", "QualityEvaluation", "FinalPackaging")
    package = gemini_standin.requests[2]
    assert package.model == COMPLEX
    assert "Package the original content as the final result" in package.last_user_text
    assert "Score: 8/10" in package.last_user_text
    assert "improve" not in package.last_user_text
    assert result_of(frames) == final


# --- routing -----------------------------------------------------------------------------------
def classification(complexity: str, category: str = "technical") -> dict:
    return {
        "category": category,
        "complexity": complexity,
        "urgency": "high",
        "requiredExpertise": ["databases"],
    }


@pytest.mark.parametrize(
    ("complexity", "model"), [("complex", COMPLEX), ("moderate", FAST), ("simple", FAST)]
)
async def test_routing_uses_complex_model_only_for_complex_queries(
    aclient, gemini_standin, complexity, model
):
    final = example(schemas.RoutedResponse, classification=classification(complexity))
    gemini_standin.enqueue(json_reply(classification(complexity)), json_reply(final))

    frames = await sse_frames(aclient, "routing", {"query": "Queries time out under load"})

    assert step_frames(frames) == ran("QueryClassification", "SpecialistResponse")
    assert calls(gemini_standin) == [(FAST, GEN), (model, STREAM)]
    classify, respond = gemini_standin.requests
    assert classify.last_user_text.startswith(
        'Classify this customer query:\n\n"Queries time out under load"'
    )
    assert schema_sent(classify)["properties"]["category"]["enum"] == [
        "technical",
        "marketing",
        "support",
        "general",
    ]
    assert respond.system_instruction == (
        "You are a senior software engineer with expertise in system architecture."
    )
    assert '"complexity": "' + complexity + '"' in respond.last_user_text
    assert result_of(frames) == final


async def test_routing_general_queries_get_the_generalist(aclient, gemini_standin):
    gemini_standin.enqueue(json_reply(classification("simple", "general")))

    await sse_frames(aclient, "routing", {"query": "Hello?"})

    assert gemini_standin.requests[1].system_instruction == "You are a helpful assistant."


# --- parallel ----------------------------------------------------------------------------------
REVIEWS = [
    ("Perform a security review", schemas.SecurityReview),
    ("Perform a performance review", schemas.PerformanceReview),
    ("Perform a maintainability review", schemas.MaintainabilityReview),
]


async def test_parallel_reviews_run_at_the_same_time(aclient, gemini_standin):
    # The stand-in holds every review until all three have arrived: reviews run one after another
    # would never all arrive, and the run would fail.
    arrived: set[str] = set()
    all_in = threading.Event()

    def handler(request):
        for prefix, schema in REVIEWS:
            if request.last_user_text.startswith(prefix):
                arrived.add(prefix)
                if len(arrived) == len(REVIEWS):
                    all_in.set()
                return gated(json_reply(example(schema, score=4)), all_in)
        return None  # the summary: the stand-in's schema-valid default

    gemini_standin.handler = handler
    run = asyncio.create_task(sse_frames(aclient, "parallel", {"code": "eval(input())"}))
    try:
        assert await gemini_standin.wait_for(all_in.is_set, timeout=10)
    finally:
        all_in.set()  # on failure, let the run end instead of waiting for the SDK's timeout
    frames = await run

    reviews = [r for r in gemini_standin.requests if r.action == GEN]
    assert len(reviews) == 3 and all(r.model == FAST for r in reviews)
    assert all("eval(input())" in r.last_user_text for r in reviews)
    assert {name for name, _ in step_frames(frames)[:3]} == {
        "SecurityReview",
        "PerformanceReview",
        "MaintainabilityReview",
    }
    assert [status for _, status in step_frames(frames)[:3]] == ["running"] * 3
    summary = gemini_standin.requests[-1]
    assert (summary.model, summary.action) == (COMPLEX, STREAM)
    assert "Analyze these three code review results" in summary.last_user_text
    assert summary.last_user_text.count('"score": 4') == 3
    schemas.CodeReviewSummary.model_validate(result_of(frames))


# --- orchestrator ------------------------------------------------------------------------------
def plan(n: int) -> dict:
    task = example(schemas.PlanTask)
    return example(
        schemas.ImplementationPlan,
        tasks=[{**task, "id": f"t{i}", "title": f"Task {i}"} for i in range(1, n + 1)],
    )


def task_id_of(request) -> str:
    return request.last_user_text.split("Task id: ")[1].split("\n")[0]


async def test_orchestrator_runs_one_bounded_worker_per_task(aclient, gemini_standin, settings):
    settings.AGENT_MAX_CONCURRENT_WORKERS = 2
    gemini_standin.enqueue(json_reply(plan(3)))
    # Each worker's answer is held until the test opens its gate.
    gates = {f"t{i}": threading.Event() for i in (1, 2, 3)}

    def handler(request):
        if "Task id: " in request.last_user_text:
            # A wrong taskId: the orchestrator puts the real one back.
            reply = json_reply(example(schemas.TaskResult, taskId="wrong"))
            return gated(reply, gates[task_id_of(request)])
        return None

    def workers():
        return [r for r in gemini_standin.requests if "Task id: " in r.last_user_text]

    gemini_standin.handler = handler
    run = asyncio.create_task(
        sse_frames(aclient, "orchestrator", {"featureDescription": "Password reset"})
    )
    try:
        # Two workers at once: both reach the model while neither has been answered.
        assert await gemini_standin.wait_for(lambda: len(workers()) >= 2, timeout=10)
        first, second = workers()[:2]
        gates[task_id_of(first)].set()
        # The third starts only when one of the two is done.
        assert await gemini_standin.wait_for(lambda: len(workers()) == 3, timeout=10)
        third = workers()[2]
    finally:
        for gate in gates.values():
            gate.set()
    frames = await run

    assert third.started >= first.finished
    assert third.started < second.finished
    assert second.started < first.finished
    planning, *_, summary = gemini_standin.requests
    assert (planning.model, planning.action) == (COMPLEX, GEN)
    assert "Create a detailed implementation plan for: Password reset" in planning.last_user_text
    assert schema_sent(planning)["properties"]["tasks"]["type"] == "ARRAY"
    assert sorted(task_id_of(w) for w in workers()) == ["t1", "t2", "t3"]
    assert all(w.model == FAST for w in workers())
    assert (summary.model, summary.action) == (COMPLEX, STREAM)
    assert "Summarize the feature implementation progress" in summary.last_user_text
    assert '"taskId": "wrong"' not in summary.last_user_text
    assert all(f'"taskId": "t{i}"' in summary.last_user_text for i in (1, 2, 3))

    names = [name for name, status in step_frames(frames) if status == "complete"]
    assert names[0] == "FeaturePlanning" and names[-1] == "OrchestrationSummary"
    assert sorted(names[1:-1]) == ["TaskExecution-t1", "TaskExecution-t2", "TaskExecution-t3"]
    schemas.OrchestrationSummary.model_validate(result_of(frames))


# --- evaluator ---------------------------------------------------------------------------------
def evaluation(score: float) -> dict:
    return example(
        schemas.TranslationEvaluation, score=score, feedback=f"feedback {score}", specificIssues=[]
    )


def translation_handler(scores: list[float]):
    """Translations v1, v2, ... and evaluations with `scores` in turn."""
    state = {"translations": 0, "evaluations": 0}

    def handler(request):
        text = request.last_user_text
        if request.action == GEN and text.startswith("Evaluate this"):
            state["evaluations"] += 1
            return json_reply(evaluation(scores[state["evaluations"] - 1]))
        if request.action == GEN:
            state["translations"] += 1
            return text_reply(f"Bonjour v{state['translations']}")
        return None

    return handler


EVALUATOR_BODY = {"text": "Hello", "targetLanguage": "French", "domain": "legal"}


async def test_evaluator_stops_after_three_evaluations(aclient, gemini_standin):
    gemini_standin.handler = translation_handler([5, 6, 7, 9])

    frames = await sse_frames(aclient, "evaluator", EVALUATOR_BODY)

    assert step_frames(frames) == ran(
        "InitialTranslation",
        "Evaluation-1",
        "Improvement-1",
        "Evaluation-2",
        "Improvement-2",
        "Evaluation-3",
        "OptimizationSummary",
    )
    assert calls(gemini_standin) == [
        (COMPLEX, GEN),
        (FAST, GEN),
        (COMPLEX, GEN),
        (FAST, GEN),
        (COMPLEX, GEN),
        (FAST, GEN),
        (FAST, STREAM),
    ]
    requests = gemini_standin.requests
    assert requests[0].last_user_text == ("Translate this text to French for legal context: Hello")
    assert "Evaluate this French translation for legal domain:" in requests[1].last_user_text
    assert "Translation: Bonjour v1" in requests[1].last_user_text
    improve = requests[2].last_user_text
    assert "Improve this French translation based on feedback:" in improve
    assert "Score: 5/10" in improve and "Feedback: feedback 5" in improve
    assert "Translation: Bonjour v3" in requests[5].last_user_text
    assert "Final Translation: Bonjour v3" in requests[6].last_user_text
    schemas.TranslationResult.model_validate(result_of(frames))


@pytest.mark.parametrize(("scores", "evaluations"), [([9], 1), ([5, 8.5], 2)])
async def test_evaluator_stops_as_soon_as_score_reaches_8_5(
    aclient, gemini_standin, scores, evaluations
):
    gemini_standin.handler = translation_handler(scores)

    frames = await sse_frames(aclient, "evaluator", EVALUATOR_BODY)

    names = [name for name, status in step_frames(frames) if status == "complete"]
    assert [n for n in names if n.startswith("Evaluation")] == [
        f"Evaluation-{i}" for i in range(1, evaluations + 1)
    ]
    assert [n for n in names if n.startswith("Improvement")] == [
        f"Improvement-{i}" for i in range(1, evaluations)
    ]
    assert len(gemini_standin.requests) == 2 * evaluations + 1


async def test_evaluator_keeps_the_best_scoring_translation(aclient, gemini_standin):
    gemini_standin.handler = translation_handler([6, 4, 5])

    await sse_frames(aclient, "evaluator", EVALUATOR_BODY)

    assert "Final Translation: Bonjour v1" in gemini_standin.requests[-1].last_user_text


# --- tools -------------------------------------------------------------------------------------
def solution(answer: str) -> dict:
    return example(schemas.MathSolution, finalAnswer=answer)


async def test_tool_loop_calculates_validates_and_answers(aclient, gemini_standin):
    gemini_standin.enqueue(
        function_call_reply("calculate", {"expression": "2**10"}),
        function_call_reply(
            "validateAnswer",
            {
                "originalProblem": "What is 2 to the 10th power?",
                "proposedAnswer": "1024",
                "validationMethod": "2**10",
            },
        ),
        text_reply("2**10 = 1024, validated."),
        json_reply(solution("1024")),
    )

    frames = await sse_frames(aclient, "tools", {"problem": "What is 2 to the 10th power?"})

    assert calls(gemini_standin) == [(COMPLEX, GEN)] * 3 + [(COMPLEX, STREAM)]
    first, second, third, final = gemini_standin.requests
    assert "Solve this math problem step by step: What is 2 to the 10th power?" in (
        first.last_user_text
    )
    declared = first.body["tools"][0]["functionDeclarations"]
    assert {d["name"] for d in declared} == {"calculate", "validateAnswer"}
    assert second.function_responses == [
        {
            "name": "calculate",
            "response": {"expression": "2**10", "result": 1024, "success": True},
        }
    ]
    validated = third.function_responses[-1]
    assert validated["name"] == "validateAnswer"
    assert validated["response"]["isValid"] is True
    assert '"result": 1024' in final.last_user_text
    assert "2**10 = 1024, validated." in final.last_user_text

    assert types_in(frames)[:8] == [
        "start",
        "data-step",
        "tool-input-available",
        "tool-output-available",
        "tool-input-available",
        "tool-output-available",
        "data-step",
        "data-step",
    ]
    tool_inputs = of_type(frames, "tool-input-available")
    assert tool_inputs[0]["toolName"] == "calculate"
    assert tool_inputs[0]["input"] == {"expression": "2**10"}
    outputs = of_type(frames, "tool-output-available")
    assert outputs[0]["output"]["result"] == 1024
    assert outputs[0]["toolCallId"] == tool_inputs[0]["toolCallId"]
    assert result_of(frames)["finalAnswer"] == "1024"

    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    loop_step = await run.steps.aget(name="ProblemSolving")
    assert loop_step.output["modelCalls"] == 3
    assert [c["name"] for c in loop_step.output["toolCalls"]] == ["calculate", "validateAnswer"]


async def test_a_tool_loop_that_fails_keeps_the_calls_its_client_was_shown(aclient, gemini_standin):
    gemini_standin.enqueue(
        function_call_reply("calculate", {"expression": "2**10"}),
        error_reply(400),  # the model call after the tool ran
    )

    frames = await sse_frames(aclient, "tools", {"problem": "What is 2 to the 10th power?"})

    [tool_input] = of_type(frames, "tool-input-available")
    [tool_output] = of_type(frames, "tool-output-available")
    shown = {
        "toolCalls": [
            {
                "name": tool_input["toolName"],
                "args": tool_input["input"],
                "output": tool_output["output"],
                "isError": False,
            }
        ]
    }
    assert tool_output["output"]["result"] == 1024
    [failed] = [f for f in of_type(frames, "data-step") if f["data"]["status"] == "error"]
    assert failed["data"]["output"] == shown
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    assert run.status == "error"
    loop_step = await run.steps.aget(name="ProblemSolving")
    assert (loop_step.status, loop_step.output) == ("error", shown)


def types_in(frames):
    return [f["type"] if isinstance(f, dict) else f for f in frames]


async def test_dangerous_expressions_are_tool_errors_the_model_sees(aclient, gemini_standin):
    gemini_standin.enqueue(
        function_call_reply(
            "calculate",
            {"expression": "__import__('os')"},
            more=[
                ("calculate", {"expression": "9**9**9"}),
                ("calculate", {"expression": "1+" * 5000 + "1"}),
            ],
        ),
        text_reply("I could not compute that."),
        json_reply(solution("unknown")),
    )

    frames = await sse_frames(aclient, "tools", {"problem": "Break the calculator"})

    responses = gemini_standin.requests[1].function_responses
    assert [r["name"] for r in responses] == ["calculate"] * 3
    errors = [r["response"]["error"] for r in responses]
    assert "__import__" in errors[0] and "not defined" in errors[0]
    assert "Exponents are limited" in errors[1]
    assert "too long" in errors[2]
    outputs = [f["output"] for f in of_type(frames, "tool-output-available")]
    assert [output.keys() for output in outputs] == [{"error"}] * 3
    run = await AgentRun.objects.aget(id=frames[0]["messageId"])
    assert run.status == "complete"


async def test_validate_answer_rejects_a_wrong_answer(aclient, gemini_standin):
    gemini_standin.enqueue(
        function_call_reply(
            "validateAnswer",
            {"originalProblem": "What is 2**10?", "proposedAnswer": "1000", "validationMethod": ""},
        ),
        text_reply("Done."),
    )

    await sse_frames(aclient, "tools", {"problem": "What is 2**10?"})

    (response,) = gemini_standin.requests[1].function_responses
    assert response["response"]["isValid"] is False
    assert response["response"]["expected"] == 1024


async def test_tool_loop_is_bounded(aclient, gemini_standin):
    gemini_standin.handler = lambda request: (
        function_call_reply("calculate", {"expression": "1+1"}) if request.action == GEN else None
    )

    frames = await sse_frames(aclient, "tools", {"problem": "Loop forever"})

    model_calls = [r for r in gemini_standin.requests if r.action == GEN]
    assert len(model_calls) == 8
    last_mode = model_calls[-1].body["toolConfig"]["functionCallingConfig"]["mode"]
    assert last_mode == "NONE"
    assert len(of_type(frames, "tool-input-available")) == 7
    schemas.MathSolution.model_validate(result_of(frames))
