"""Demo data to try the product and its admin: a demo user, a reviewer, a few other users; their
conversations (short and long ones, replies that failed or were cut off, costly ones, reasoning
and sources), feedback, reviews, and a month of usage over three models.

Running it again changes nothing: each user, conversation and the month of usage is made only
when it is not there yet. It lives in the project package because it fills every app (chat,
usage, review), and no app may import the ones above it."""

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from accounts.services import register_user
from chat.models import Conversation, Message, MessageFeedback
from review.groups import ensure_reviewer_group
from review.models import ReplyReview
from usage.models import UsageRecord

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password-123"
REVIEWER_USERNAME = "reviewer"
REVIEWER_PASSWORD = "reviewer-password-123"
#: Other people using the product (with the demo password), so that the admin has users to
#: filter by.
OTHER_USERNAMES = ["ana", "ben", "chen"]

FLASH, PRO, LITE = "gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"
MODELS = [FLASH, PRO, LITE]
USAGE_DAYS = 30


def turn(ask: str, reply: str, **reply_fields) -> tuple[str, str, dict]:
    """One exchange: what the user asked, the reply, and how the reply went (`status`, `model`,
    `tokens` (input, output), `reasoning`, `sources`, `feedback` (rating, comment, categories),
    `review` (the reviewer's note))."""
    return ask, reply, reply_fields


# (owner, title, system prompt, days ago, turns)
CONVERSATIONS = [
    (
        DEMO_USERNAME,
        "Planning a trip to Lisbon",
        "You are a concise, friendly travel assistant.",
        2,
        [
            turn(
                "I have three days in Lisbon. What should I not miss?",
                "Day 1: Alfama and the castle at sunset. Day 2: Belém (the tower, the monastery, "
                "and a pastel de nata). Day 3: a day trip to Sintra. Evenings: fado in Alfama.",
                feedback=("up", "Exactly what I needed.", []),
            ),
        ],
    ),
    (
        DEMO_USERNAME,
        "Explain Python generators",
        "",
        5,
        [
            turn(
                "What is a generator in Python, in two sentences?",
                "A generator is a function that uses `yield` to produce values lazily, one at a "
                "time, pausing between them. Iterating it resumes the function until the next "
                "`yield`, so large or infinite sequences never sit in memory at once.",
                reasoning="Two sentences: what it is, then why it matters (laziness, memory).",
            ),
            turn(
                "And an async generator?",
                "The same idea with `async def` and `yield`: you consume it with `async for`, and "
                "it may `await` between values, which is how streamed replies are produced here.",
            ),
        ],
    ),
    (
        DEMO_USERNAME,
        "Capital cities quiz",
        "",
        9,
        [
            turn(
                "What is the capital of Australia?",
                "The capital of Australia is Sydney, its largest and best-known city.",
                feedback=("down", "It is Canberra, not Sydney.", ["incorrect"]),
            ),
            turn(
                "Are you sure? I read it was Canberra.",
                "You are right, and I was wrong: the capital of Australia is Canberra. Sydney is "
                "the largest city.",
                feedback=("up", "", []),
                review="Corrected itself when challenged; the first answer is the problem.",
            ),
        ],
    ),
    (
        DEMO_USERNAME,
        "Summarise a contract",
        "Answer precisely; quote the clause you rely on.",
        12,
        [
            turn(
                "Summarise the termination clauses of this 80-page supplier contract: [pasted]",
                "Termination for convenience: either party, 90 days' written notice (clause "
                "14.2). Termination for cause: material breach not cured within 30 days "
                "(14.3). Insolvency: immediate (14.4). Surviving clauses: confidentiality, "
                "liability caps, governing law (14.7).",
                model=PRO,
                tokens=(48_000, 2_400),
                reasoning="Locate section 14; list each ground with its notice period.",
            ),
        ],
    ),
    (
        "ana",
        "Debugging a Django migration",
        "",
        3,
        [
            turn(
                "My migration fails with 'column already exists'. What do I do?",
                "The column was probably added by hand or by a migration that was later edited. "
                "Check `showmigrations`, then either fake the migration that adds it "
                "(`migrate app 0004 --fake`) or drop the column and run it again.",
                feedback=("up", "The --fake tip saved me.", []),
            ),
            turn(
                "How do I squash the app's 40 migrations?",
                "Run `manage.py squashmigrations app 0001 0040`, review the generated file,",
                status=Message.Status.ERROR,
                tokens=(1_200, 30),
                feedback=("down", "It stopped in the middle.", ["incomplete"]),
            ),
        ],
    ),
    (
        "ana",
        "Write a cover letter",
        "",
        15,
        [
            turn(
                "Write a cover letter for a junior data analyst position at a bank.",
                "Dear Hiring Manager, I am writing to apply for the Junior Data Analyst position. "
                "During my studies I",
                status=Message.Status.INTERRUPTED,
                tokens=(300, 60),
            ),
        ],
    ),
    (
        "ben",
        "Sourdough starter",
        "",
        6,
        [
            turn(
                "My sourdough starter smells like nail polish. Is it dead?",
                "No: the acetone smell means it is hungry. Discard most of it and feed it flour "
                "and water twice a day for two days.",
                sources=[("https://en.wikipedia.org/wiki/Sourdough", "Sourdough - Wikipedia")],
            ),
            turn(
                "How long should I bake a 1 kg loaf?",
                "Bake it for about 3 hours at 150 °C.",
                feedback=("down", "Far too long and too cold: 45 min at 230 °C.", ["incorrect"]),
            ),
            turn(
                "Can I make it gluten free?",
                "I'm not able to help with that.",
                feedback=("down", "Why not? It is a cooking question.", ["refusal"]),
            ),
        ],
    ),
    (
        "chen",
        "Translate a product page",
        "Translate into French; keep the formatting.",
        20,
        [
            turn(
                "Translate: 'Free shipping on orders over $50. Returns within 30 days.'",
                "Livraison gratuite dès 50 $ d'achat. Retours sous 30 jours.",
                model=LITE,
                tokens=(90, 25),
                feedback=("up", "", []),
            ),
            turn(
                "Now the whole catalogue (attached, 1,200 products).",
                "Here is the translated catalogue, product by product: 1. Chaise en chêne...",
                model=PRO,
                tokens=(22_000, 31_000),
                feedback=("down", "Made up product names.", ["incorrect", "hallucination"]),
                review="Invented names in items 40-60; the model needs the source text chunked.",
            ),
        ],
    ),
]

#: A long conversation (over a hundred messages): the history budget and summary at work, and a
#: page of messages in the admin.
LONG_TITLE = "Learning Django, step by step"
LONG_TOPICS = [
    "models",
    "migrations",
    "the ORM's select_related",
    "prefetch_related",
    "class-based views",
    "forms",
    "the admin",
    "signals",
    "middleware",
    "sessions",
    "authentication",
    "permissions",
    "caching",
    "static files",
    "templates",
    "management commands",
    "transactions",
    "async views",
    "channels",
    "testing with pytest",
    "settings per environment",
    "logging",
    "deployment",
    "security checks",
    "database indexes",
    "full-text search",
    "file storage",
    "email",
    "internationalisation",
    "time zones",
    "custom user models",
    "REST APIs",
    "pagination",
    "throttling",
    "the contenttypes framework",
    "generic relations",
    "query expressions",
    "window functions",
    "constraints",
    "data migrations",
    "squashing migrations",
    "multiple databases",
    "connection pooling",
    "Celery",
    "profiling",
    "the debug toolbar",
    "health checks",
    "graceful shutdown",
    "feature flags",
    "what to learn next",
    "a summary of it all",
    "a reading list",
    "common mistakes",
    "good habits",
    "the release notes",
]


def long_conversation() -> list[tuple[str, str, dict]]:
    turns = []
    for n, topic in enumerate(LONG_TOPICS):
        fields: dict = {"tokens": (800 + 450 * n, 350 + 7 * n)}
        if n == 17:
            fields["feedback"] = ("down", "Outdated: async views exist since 3.1.", ["outdated"])
        if n == 30:
            fields["status"] = Message.Status.INTERRUPTED
        turns.append(
            turn(
                f"Lesson {n + 1}: explain {topic} in Django, with an example.",
                f"Lesson {n + 1}, {topic}: the idea, when to use it, and a short example. "
                f"(This is demo text: the real reply would come from the model.)",
                **fields,
            )
        )
    return turns


class Command(BaseCommand):
    help = "Create the demo users, conversations, feedback, reviews and usage (idempotent)."

    @transaction.atomic
    def handle(self, *args, **options):
        self.rng = random.Random(2026)  # the same demo data every time it is made
        demo, created = self.user(DEMO_USERNAME, DEMO_PASSWORD)
        reviewer, _ = self.user(REVIEWER_USERNAME, REVIEWER_PASSWORD)
        if not reviewer.is_staff:
            reviewer.is_staff = True
            reviewer.save(update_fields=["is_staff"])
        reviewer.groups.add(ensure_reviewer_group())
        users = {DEMO_USERNAME: demo, REVIEWER_USERNAME: reviewer}
        for name in OTHER_USERNAMES:
            users[name] = self.user(name, DEMO_PASSWORD)[0]

        for owner, title, system_prompt, days_ago, turns in CONVERSATIONS:
            self.conversation(users[owner], title, system_prompt, days_ago, turns, reviewer)
        self.conversation(demo, LONG_TITLE, "", 25, long_conversation(), reviewer)
        self.usage([users[name] for name in (DEMO_USERNAME, *OTHER_USERNAMES)])

        action = "Created" if created else "Already present:"
        self.stdout.write(
            self.style.SUCCESS(
                f"{action} demo user  username={DEMO_USERNAME}  password={DEMO_PASSWORD}"
            )
        )
        self.stdout.write(
            f"Reviewer (admin, review queue)  username={REVIEWER_USERNAME}  "
            f"password={REVIEWER_PASSWORD}  /admin/review/reply/"
        )

    def user(self, username: str, password: str):
        user = get_user_model().objects.filter(username=username).first()
        if user is not None:
            return user, False
        # Created as every account is: through the accounts service (what /register/ uses).
        return register_user(username=username, password=password), True

    def conversation(self, owner, title, system_prompt, days_ago, turns, reviewer) -> None:
        conversation, new = Conversation.objects.get_or_create(user=owner, title=title)
        if not new:
            return
        start = timezone.now() - timedelta(days=days_ago, hours=self.rng.randint(1, 8))
        messages, extras = [], []
        if system_prompt:
            messages.append(Message(role="system", content=system_prompt))
        for ask, reply, fields in turns:
            messages.append(Message(role="user", content=ask, parts=[text(ask)]))
            answer = self.reply(reply, fields)
            messages.append(answer)
            extras.append((answer, fields))
        for position, message in enumerate(messages):
            message.conversation = conversation
            message.position = position
        Message.objects.bulk_create(messages)
        # Spread over the conversation's day, a minute or two apart (created_at is auto_now_add).
        for position, message in enumerate(messages):
            message.created_at = start + timedelta(minutes=2 * position)
        Message.objects.bulk_update(messages, ["created_at"])
        conversation.next_position = len(messages)
        conversation.save(update_fields=["next_position"])

        for answer, fields in extras:
            if "feedback" in fields:
                rating, comment, categories = fields["feedback"]
                MessageFeedback.objects.create(
                    message=answer,
                    user=owner,
                    rating=rating,
                    comment=comment,
                    categories=categories,
                )
            if "review" in fields:
                ReplyReview.objects.create(
                    message=answer,
                    reviewer=reviewer,
                    reviewed_at=answer.created_at + timedelta(hours=3),
                    note=fields["review"],
                )

    def reply(self, content: str, fields: dict) -> Message:
        parts = []
        if fields.get("reasoning"):
            parts.append({"type": "reasoning", "text": fields["reasoning"]})
        parts.append(text(content))
        for url, title in fields.get("sources", []):
            parts.append({"type": "source-url", "sourceId": url, "url": url, "title": title})
        input_tokens, output_tokens = fields.get("tokens", (self.rng.randint(200, 900), 120))
        status = fields.get("status", Message.Status.COMPLETE)
        return Message(
            role="assistant",
            content=content,
            parts=parts,
            status=status,
            model=fields.get("model", FLASH),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
            finish_reason={"complete": "stop", "error": "error"}.get(status, ""),
        )

    def usage(self, users) -> None:
        """A month of model calls per user, over the three models: once (the first time)."""
        if UsageRecord.objects.filter(user__in=users).exists():
            return
        today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
        records = []
        for user in users:
            heavy = self.rng.uniform(0.5, 2.0)  # some users use it more than others
            for days_ago in range(USAGE_DAYS):
                for _ in range(self.rng.randint(0, 6)):
                    model = self.rng.choices(MODELS, weights=[6, 1, 3])[0]
                    input_tokens = int(self.rng.randint(300, 6_000) * heavy)
                    output_tokens = int(self.rng.randint(100, 1_500) * heavy)
                    at = (
                        today
                        - timedelta(days=days_ago)
                        + timedelta(minutes=self.rng.randint(0, 24 * 60 - 1))
                    )
                    records.append((at, user, model, input_tokens, output_tokens))
        created = UsageRecord.objects.bulk_create(
            UsageRecord(
                user=user,
                endpoint=self.rng.choice(["chat", "chat", "chat", "agents:routing"]),
                model=model,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
            )
            for _, user, model, input_tokens, output_tokens in records
        )
        for record, (at, *_) in zip(created, records, strict=True):
            record.created_at = min(at, timezone.now())
        UsageRecord.objects.bulk_update(created, ["created_at"])


def text(value: str) -> dict:
    return {"type": "text", "text": value}
