"""Create a demo user and a few sample conversations. Running it again changes nothing."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.services import register_user
from chat.models import Conversation, Message

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password-123"

CONVERSATIONS = [
    (
        "Planning a trip to Lisbon",
        "You are a concise, friendly travel assistant.",
        [
            ("user", "I have three days in Lisbon. What should I not miss?"),
            (
                "assistant",
                "Day 1: Alfama and the castle at sunset. Day 2: Belém (the tower, the monastery, "
                "and a pastel de nata). Day 3: a day trip to Sintra. Evenings: fado in Alfama.",
            ),
        ],
    ),
    (
        "Explain Python generators",
        "",
        [
            ("user", "What is a generator in Python, in two sentences?"),
            (
                "assistant",
                "A generator is a function that uses `yield` to produce values lazily, one at a "
                "time, pausing between them. Iterating it resumes the function until the next "
                "`yield`, so large or infinite sequences never sit in memory at once.",
            ),
            ("user", "And an async generator?"),
            (
                "assistant",
                "The same idea with `async def` and `yield`: you consume it with `async for`, and "
                "it may `await` between values, which is how streamed replies are produced here.",
            ),
        ],
    ),
]


class Command(BaseCommand):
    help = "Create the demo user and sample conversations (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=DEMO_USERNAME).first()
        created = user is None
        if created:
            # Created as every account is: through the accounts service (what /register/ uses).
            user = register_user(username=DEMO_USERNAME, password=DEMO_PASSWORD)
        for title, system_prompt, turns in CONVERSATIONS:
            conversation, new = Conversation.objects.get_or_create(user=user, title=title)
            if not new:
                continue
            rows = [("system", system_prompt)] if system_prompt else []
            rows += turns
            Message.objects.bulk_create(
                Message(
                    conversation=conversation,
                    position=i,
                    role=role,
                    content=content,
                    model="" if role != "assistant" else "demo",
                )
                for i, (role, content) in enumerate(rows)
            )
            conversation.next_position = len(rows)
            conversation.save(update_fields=["next_position"])
        action = "Created" if created else "Already present:"
        self.stdout.write(
            self.style.SUCCESS(
                f"{action} demo user  username={DEMO_USERNAME}  password={DEMO_PASSWORD}"
            )
        )
