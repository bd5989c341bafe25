"""The admin: runs listed, filtered and searched; steps inline and read-only."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agents.models import AgentRun, AgentStep

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(user):
    run = AgentRun.objects.create(
        user=user, pattern="routing", input={"query": "hi"}, status="complete", total_tokens=42
    )
    AgentStep.objects.create(
        run=run,
        position=1,
        name="QueryClassification",
        status="complete",
        model="gemini-2.5-flash",
        output={"category": "general"},
        total_tokens=42,
        started_at=timezone.now(),
    )
    return run


def test_runs_changelist_filters_and_searches(admin_client, run, other_user):
    AgentRun.objects.create(user=other_user, pattern="tools", input={"problem": "1+1"})
    url = "/admin/agents/agentrun/"
    page = admin_client.get(url).content.decode()
    assert "routing" in page and "tools" in page
    filtered = admin_client.get(url, {"pattern": "routing", "status": "complete"})
    assert [r.id for r in filtered.context["cl"].result_list] == [run.id]
    searched = admin_client.get(url, {"q": "alice"})
    assert searched.context["cl"].result_count == 1


def test_run_page_shows_its_steps_read_only(admin_client, run):
    response = admin_client.get(f"/admin/agents/agentrun/{run.id}/change/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "QueryClassification" in page and "gemini-2.5-flash" in page
    assert admin_client.get("/admin/agents/agentrun/add/").status_code == 403
    assert 'name="steps-0-name"' not in page  # inline fields are not editable
