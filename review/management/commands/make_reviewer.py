"""Make an existing user a reviewer: staff (the admin lets them in) in the `reviewer` group."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from review.groups import ensure_reviewer_group


class Command(BaseCommand):
    help = "Give a user the admin's review queue: staff status and the reviewer group."

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user {username!r}: create it first (createsuperuser, or the API)."
            )
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        user.groups.add(ensure_reviewer_group())
        self.stdout.write(self.style.SUCCESS(f"{username} is a reviewer: /admin/review/reply/"))
