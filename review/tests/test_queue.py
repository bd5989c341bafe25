"""What a reviewer sees in the review queue (/admin/review/reply/) and what marking a reply
reviewed does."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from chat.models import Conversation
from review.models import ReplyReview

from .conftest import make_reply

pytestmark = pytest.mark.django_db

QUEUE = "/admin/review/reply/"


def shown(response) -> list:
    """The replies of the changelist's rows, top to bottom."""
    assert response.status_code == 200
    return [reply.pk for reply in response.context["cl"].result_list]


def ids(*replies) -> list:
    return [reply.pk for reply in replies]


def newest_first(*replies) -> list:
    return [r.pk for r in sorted(replies, key=lambda r: (r.created_at, r.pk), reverse=True)]


@pytest.fixture
def as_reviewer(client, reviewer):
    client.force_login(reviewer)
    return client


def test_the_queue_opens_on_the_open_replies(as_reviewer, queue):
    response = as_reviewer.get(QUEUE)
    assert response.status_code == 302 and response["Location"] == f"{QUEUE}?review=open"

    page = as_reviewer.get(response["Location"])
    assert shown(page) == newest_first(*queue.open)
    html = page.content.decode()
    assert "<h1>Review queue</h1>" in html
    assert "Lisbon is the capital of Spain." in html
    assert "Bake for three hours" not in html  # reviewed: not in the open queue
    assert "Q: " not in html  # the users' own messages are not replies
    # The filters' counts, as the reviewer reads them beside each choice.
    for label in [
        "open (6)",
        "reviewed (1)",
        "all (7)",
        "thumbs-down (1)",
        "thumbs-up (1)",
        "with a comment (1)",
        "no feedback (4)",
        "Error (1)",
        "Interrupted (1)",
        "over 20,000 tokens (2)",
        "over $0.05 (1)",
        "gemini-2.5-pro (2)",
        "alice (6)",
    ]:
        assert label in html, label


def test_each_filter_shows_its_replies(as_reviewer, queue, other_user):
    cases = {
        "feedback=down": ids(queue.wrong),
        "feedback=up": ids(queue.liked),
        "status__exact=error": ids(queue.failed),
        "status__exact=interrupted": ids(queue.cut),
        "over=tokens": newest_first(queue.costly, queue.long),
        "over=cost": ids(queue.costly),
        "model=gemini-2.5-flash-lite": ids(queue.long),
        "created_at__day=3&created_at__month=3&created_at__year=2026": ids(queue.liked),
        "created_at__day=1&created_at__month=3&created_at__year=2026": ids(queue.wrong),
    }
    for query, expected in cases.items():
        assert shown(as_reviewer.get(f"{QUEUE}?review=open&{query}")) == expected, query

    theirs = as_reviewer.get(f"{QUEUE}?review=all&conversation__user__id__exact={other_user.pk}")
    assert shown(theirs) == ids(queue.reviewed)
    assert shown(as_reviewer.get(f"{QUEUE}?review=reviewed")) == ids(queue.reviewed)
    everything = as_reviewer.get(f"{QUEUE}?review=all&feedback=down")
    assert shown(everything) == newest_first(queue.wrong, queue.reviewed)


def test_a_row_shows_the_conversation_feedback_tokens_cost_and_review(as_reviewer, queue):
    page = as_reviewer.get(f"{QUEUE}?review=all").content.decode()
    rows = {row: row for row in re.findall(r"<tr>.*?</tr>", page, re.S)}
    costly = next(row for row in rows if "A long itinerary." in row)
    assert "Trip to Lisbon" in costly and "alice" in costly
    assert "35000" in costly and "$0.0875" in costly and ">open<" in costly
    wrong = next(row for row in rows if "capital of Spain" in row)
    assert "down 1 · up 0" in wrong and "Wrong country" in wrong
    reviewed = next(row for row in rows if "Bake for three hours" in row)
    assert "reviewed by boss on" in reviewed and "Known bad recipe" in reviewed
    cheap = next(row for row in rows if "Take tram 28." in row)
    assert "$0.0002" in cheap  # 100 in, 50 out of Flash: $0.00003 + $0.000125


def test_a_reply_of_an_unpriced_model_has_no_cost(as_reviewer, queue):
    queue.liked.model = "some-new-model"
    queue.liked.save(update_fields=["model"])
    page = as_reviewer.get(f"{QUEUE}?review=open&model=some-new-model").content.decode()
    row = next(r for r in re.findall(r"<tr>.*?</tr>", page, re.S) if "Take tram 28." in r)
    assert "—" in row and "$" not in row


def test_the_changelist_costs_the_same_queries_for_many_rows(as_reviewer, queue, user):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert as_reviewer.get(f"{QUEUE}?review=all").status_code == 200
        return len(captured)

    few = queries()
    more = Conversation.objects.create(user=user, title="More")
    for n in range(12):
        reply = make_reply(more, f"reply {n}")
        reply.feedback.create(user=user, rating="down", comment=f"bad {n}")
    assert queries() == few


def test_a_reviewer_marks_a_reply_reviewed_with_a_note(as_reviewer, reviewer, queue):
    change = f"{QUEUE}{queue.wrong.pk}/change/"
    page = as_reviewer.get(change)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Q: Lisbon is the capital of Spain." in html  # what was asked
    assert "Wrong country" in html and "incorrect" in html  # the user's feedback
    assert 'name="review-0-note"' in html

    before = timezone.now()
    response = as_reviewer.post(
        f"{change}?_changelist_filters=review%3Dopen",  # as the queue links it
        {
            "review-TOTAL_FORMS": "1",
            "review-INITIAL_FORMS": "0",
            "review-MIN_NUM_FORMS": "0",
            "review-MAX_NUM_FORMS": "1",
            "review-0-note": "The capital is right, the country is wrong.",
            "review-0-message": str(queue.wrong.pk),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == f"{QUEUE}?review=open"
    review = ReplyReview.objects.get(message=queue.wrong)
    assert review.reviewer == reviewer
    assert before <= review.reviewed_at <= timezone.now()
    assert review.note == "The capital is right, the country is wrong."

    assert queue.wrong.pk not in shown(as_reviewer.get(response["Location"]))
    reviewed = as_reviewer.get(f"{QUEUE}?review=reviewed")
    assert queue.wrong.pk in shown(reviewed)
    assert "reviewed by rita on" in reviewed.content.decode()


def test_the_bulk_action_marks_the_selected_replies_reviewed(as_reviewer, reviewer, queue):
    response = as_reviewer.post(
        f"{QUEUE}?review=open",
        {
            "action": "mark_selected_reviewed",
            "_selected_action": [str(queue.failed.pk), str(queue.cut.pk)],
        },
        follow=True,
    )
    assert "2 replies marked reviewed." in response.content.decode()
    reviews = ReplyReview.objects.filter(reviewer=reviewer)
    assert sorted(r.message_id for r in reviews) == sorted(ids(queue.failed, queue.cut))
    assert shown(as_reviewer.get(f"{QUEUE}?review=open")) == newest_first(
        queue.wrong, queue.costly, queue.long, queue.liked
    )


def test_reviewing_again_keeps_the_note_and_says_who_reviewed_last(reviewer, queue):
    from review.services import mark_reviewed

    earlier = ReplyReview.objects.get(message=queue.reviewed)
    review = mark_reviewed(message=queue.reviewed, reviewer=reviewer)
    assert review.pk == earlier.pk and review.reviewer == reviewer
    assert review.note == "Known bad recipe"
    assert review.reviewed_at > earlier.reviewed_at - timedelta(seconds=1)


def test_only_assistant_replies_are_reviewed(reviewer, queue):
    from core.errors import ServiceError
    from review.services import mark_reviewed

    question = queue.wrong.conversation.messages.get(position=queue.wrong.position - 1)
    with pytest.raises(ServiceError):
        mark_reviewed(message=question, reviewer=reviewer)
    assert not ReplyReview.objects.filter(message=question).exists()
