"""`manage.py prune_attachment_files` deletes old files no row names, and nothing else."""

import io
import os
import time

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from attachments import services

from . import files

pytestmark = pytest.mark.django_db


def test_old_orphans_go_and_everything_else_stays(user, media_root):
    kept = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    old_orphan = default_storage.save(f"attachments/{user.id}/old.png", ContentFile(b"x"))
    young_orphan = default_storage.save(f"attachments/{user.id}/young.png", ContentFile(b"y"))
    an_hour_ago = time.time() - 7200
    os.utime(default_storage.path(old_orphan), (an_hour_ago, an_hour_ago))
    os.utime(default_storage.path(kept.file.name), (an_hour_ago, an_hour_ago))

    dry = io.StringIO()
    call_command("prune_attachment_files", "--dry-run", stdout=dry)
    assert default_storage.exists(old_orphan)
    assert f"would delete {old_orphan}" in dry.getvalue()

    out = io.StringIO()
    call_command("prune_attachment_files", stdout=out)

    assert not default_storage.exists(old_orphan)
    assert default_storage.exists(young_orphan)
    assert default_storage.exists(kept.file.name)
    assert "1 orphaned file(s) deleted; 1 younger than 3600 s kept." in out.getvalue()


def test_nothing_stored_yet(media_root):
    out = io.StringIO()
    call_command("prune_attachment_files", stdout=out)
    assert "No attachment files stored." in out.getvalue()
