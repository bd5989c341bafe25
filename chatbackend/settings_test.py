"""Settings for the test suite: production settings with test-safe environment defaults.

Anything set in the real environment (DATABASE_URL, REDIS_URL in CI) still wins."""

import os
import tempfile
from pathlib import Path

os.environ.setdefault(
    "DJANGO_SECRET_KEY", "test-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
)
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("AI_PROVIDER", "offline")
os.environ.setdefault("OFFLINE_CHUNK_DELAY_MS", "0")
os.environ.setdefault("CHAT_RATE_LIMIT", "1000/m")
os.environ.setdefault("AGENT_RATE_LIMIT", "1000/m")
os.environ.setdefault("AUTH_RATE_LIMIT", "1000/m")
os.environ.setdefault("ATTACHMENT_RATE_LIMIT", "1000/m")
os.environ.setdefault("FEEDBACK_RATE_LIMIT", "1000/m")
os.environ.setdefault("GEMINI_RETRY_INITIAL_DELAY_S", "0.01")
os.environ.setdefault("GEMINI_RETRY_MAX_DELAY_S", "0.05")
os.environ.pop("GEMINI_API_KEY", None)
os.environ.pop("GOOGLE_API_KEY", None)

from .settings import *  # noqa: F403

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
SERVESTATIC_USE_FINDERS = True
SERVESTATIC_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not SQLite's in-memory test database, so that a server in another process (tests of
    # several workers, SIGTERM, production settings) sees the test's rows. One per test run.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(Path(tempfile.gettempdir()) / f"chatbackend-test-{os.getpid()}.sqlite3")
    }
