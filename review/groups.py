"""The `reviewer` staff group: reads conversations, messages, feedback and usage, opens the review
queue and writes reviews; it cannot change or delete a message (its text or anything else).

Kept by the code, as Django keeps permissions and content types: `ensure_reviewer_group` runs
after every `migrate` (and after every flush of a test database), so the group exists with
exactly these permissions. Rights beyond these belong in another group."""

from django.contrib.auth.models import Group, Permission
from django.db.models import Q

REVIEWER_GROUP = "reviewer"
REVIEWER_PERMISSIONS = [
    ("chat", "view_conversation"),
    ("chat", "view_message"),
    ("chat", "view_messagefeedback"),
    ("usage", "view_usagerecord"),
    ("review", "view_reply"),
    ("review", "view_replyreview"),
    ("review", "add_replyreview"),
    ("review", "change_replyreview"),
]


def ensure_reviewer_group(*, using: str = "default") -> Group:
    group, _ = Group.objects.using(using).get_or_create(name=REVIEWER_GROUP)
    wanted = Q()
    for app_label, codename in REVIEWER_PERMISSIONS:
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    group.permissions.set(Permission.objects.using(using).filter(wanted))
    return group


def on_post_migrate(sender, *, using: str = "default", **kwargs) -> None:
    """After `review` is migrated; the apps before it in INSTALLED_APPS (chat, usage) and this
    one have their permissions by then (auth's own post_migrate handler runs first)."""
    ensure_reviewer_group(using=using)
