"""Delete stored files that no attachment row names.

Such files are left when a transaction that created an attachment rolls back after the file was
written (the storage is not transactional), or when rows are removed without Django (SQL, a
restore). Files younger than --min-age are kept: their row may not be committed yet."""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from attachments.models import Attachment

ROOT = "attachments"


class Command(BaseCommand):
    help = "Delete stored attachment files that no Attachment row refers to."

    def add_arguments(self, parser):
        parser.add_argument(
            "--min-age",
            type=int,
            default=3600,
            help="Keep files modified less than this many seconds ago (default 3600).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Only list what would go.")

    def handle(self, *args, min_age: int, dry_run: bool, **options):
        storage = Attachment._meta.get_field("file").storage
        cutoff = timezone.now() - timedelta(seconds=min_age)
        deleted = kept_young = 0
        if not storage.exists(ROOT):
            self.stdout.write("No attachment files stored.")
            return
        owner_dirs, _ = storage.listdir(ROOT)
        for owner_dir in owner_dirs:
            prefix = f"{ROOT}/{owner_dir}/"
            _, names = storage.listdir(prefix.rstrip("/"))
            known = set(
                Attachment.objects.filter(file__startswith=prefix).values_list("file", flat=True)
            )
            for name in (prefix + n for n in names):
                if name in known:
                    continue
                if storage.get_modified_time(name) > cutoff:
                    kept_young += 1
                    continue
                self.stdout.write(f"{'would delete' if dry_run else 'deleting'} {name}")
                if not dry_run:
                    storage.delete(name)
                deleted += 1
        verb = "would be deleted" if dry_run else "deleted"
        self.stdout.write(
            f"{deleted} orphaned file(s) {verb}; {kept_young} younger than {min_age} s kept."
        )
