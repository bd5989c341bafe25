"""The chat stream's request body serializer: validated per request with fields built once."""

import threading

from chat.serializers import ChatStreamRequestSerializer


def validate(data):
    body = ChatStreamRequestSerializer(data=data)
    return body.is_valid(), body.errors, body.validated_data if body.is_valid() else None


def test_instances_in_a_thread_share_their_fields_and_nothing_else():
    first = ChatStreamRequestSerializer(data={})
    second = ChatStreamRequestSerializer(data={})
    assert first.fields is second.fields, "DRF would deep-copy every field per instance"

    bad = validate({"message": 5, "conversation_id": "nope"})
    good = validate({"message": "hi", "files": [{"mediaType": "text/plain", "url": "data:,x"}]})
    bad_again = validate({"message": 5, "conversation_id": "nope"})

    assert bad[0] is False and set(bad[1]) == {"message", "conversation_id"}
    assert good[0] is True and good[1] == {}
    assert good[2]["text"] == "hi"
    assert good[2]["files"] == [{"type": "file", "mediaType": "text/plain", "url": "data:,x"}]
    assert bad_again[1] == bad[1]


def test_each_thread_binds_its_own_fields():
    here = ChatStreamRequestSerializer(data={}).fields
    there = []
    thread = threading.Thread(target=lambda: there.append(ChatStreamRequestSerializer().fields))
    thread.start()
    thread.join()
    assert there[0] is not here
    assert list(there[0]) == list(here)
