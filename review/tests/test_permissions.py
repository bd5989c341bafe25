"""The `reviewer` group (review.groups) reads and annotates, and never edits a message's text;
the queue is for staff only."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from chat.models import Message
from review.models import ReplyReview

pytestmark = pytest.mark.django_db

QUEUE = "/admin/review/reply/"


def test_the_reviewer_group_holds_exactly_reading_and_reviewing():
    group = Group.objects.get(name="reviewer")
    assert set(group.permissions.values_list("content_type__app_label", "codename")) == {
        ("chat", "view_conversation"),
        ("chat", "view_message"),
        ("chat", "view_messagefeedback"),
        ("usage", "view_usagerecord"),
        ("review", "view_reply"),
        ("review", "view_replyreview"),
        ("review", "add_replyreview"),
        ("review", "change_replyreview"),
    }


def test_a_reviewer_cannot_change_a_message_in_the_message_admin(client, reviewer, queue):
    client.force_login(reviewer)
    change = f"/admin/chat/message/{queue.wrong.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200  # read-only
    assert b'name="_save"' not in page.content
    response = client.post(change, {"content": "Lisbon is the capital of Portugal."})
    assert response.status_code == 403
    assert Message.objects.get(pk=queue.wrong.pk).content == "Lisbon is the capital of Spain."


def test_the_queue_saves_the_review_and_never_the_text(client, reviewer, queue):
    client.force_login(reviewer)
    queue.wrong.refresh_from_db()
    updated_at = queue.wrong.updated_at
    response = client.post(
        f"{QUEUE}{queue.wrong.pk}/change/",
        {
            "content": "Lisbon is the capital of Portugal.",
            "status": "complete",
            "model": "edited",
            "review-TOTAL_FORMS": "1",
            "review-INITIAL_FORMS": "0",
            "review-MIN_NUM_FORMS": "0",
            "review-MAX_NUM_FORMS": "1",
            "review-0-note": "",
            "review-0-message": str(queue.wrong.pk),
        },
    )
    assert response.status_code == 302
    reply = Message.objects.get(pk=queue.wrong.pk)
    assert (reply.content, reply.model) == ("Lisbon is the capital of Spain.", "gemini-2.5-flash")
    assert reply.updated_at == updated_at  # not even saved unchanged
    review = ReplyReview.objects.get(message=reply)
    assert (review.reviewer, review.note) == (reviewer, "")  # an empty note still marks it


def test_a_reviewer_cannot_delete_replies(client, reviewer, queue):
    client.force_login(reviewer)
    assert client.get(f"{QUEUE}{queue.wrong.pk}/delete/").status_code == 403
    assert client.get(f"/admin/chat/message/{queue.wrong.pk}/delete/").status_code == 403
    page = client.get(f"{QUEUE}?review=open").content.decode()
    assert "delete_selected" not in page


def test_a_reviewer_reads_conversations_and_usage(client, reviewer, queue):
    client.force_login(reviewer)
    conversation = client.get(f"/admin/chat/conversation/{queue.wrong.conversation_id}/change/")
    assert conversation.status_code == 200 and b"capital of Spain" in conversation.content
    assert b'name="_save"' not in conversation.content
    assert client.get("/admin/usage/usagerecord/report/").status_code == 200


def test_a_user_who_is_not_staff_gets_the_login_page(client, user, queue):
    client.force_login(user)
    for url in [f"{QUEUE}?review=open", f"{QUEUE}{queue.wrong.pk}/change/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_outside_the_group_cannot_open_the_queue(client, django_user_model, queue):
    staff = django_user_model.objects.create_user(username="sam", is_staff=True)
    client.force_login(staff)
    assert client.get(f"{QUEUE}?review=open").status_code == 403
    assert client.post(f"{QUEUE}{queue.wrong.pk}/change/", {}).status_code == 403
    assert not ReplyReview.objects.filter(message=queue.wrong).exists()


def test_a_reader_of_the_queue_without_review_permissions_cannot_mark_reviewed(
    client, django_user_model, queue
):
    from django.contrib.auth.models import Permission

    reader = django_user_model.objects.create_user(username="rea", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_reply"))
    client.force_login(reader)
    assert client.get(f"{QUEUE}?review=open").status_code == 200
    assert b"mark_selected_reviewed" not in client.get(f"{QUEUE}?review=open").content
    response = client.post(
        f"{QUEUE}{queue.wrong.pk}/change/",
        {"review-TOTAL_FORMS": "1", "review-INITIAL_FORMS": "0", "review-0-note": "x"},
    )
    assert response.status_code == 403
    assert not ReplyReview.objects.filter(message=queue.wrong).exists()


def test_make_reviewer_gives_a_user_the_group_and_the_admin(user, capsys):
    call_command("make_reviewer", user.username)
    user.refresh_from_db()
    assert user.is_staff and not user.is_superuser
    assert list(user.groups.values_list("name", flat=True)) == ["reviewer"]
    assert user.has_perm("review.add_replyreview") and not user.has_perm("chat.change_message")
    assert "alice is a reviewer" in capsys.readouterr().out


def test_make_reviewer_of_nobody_says_so():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("make_reviewer", "nobody")
