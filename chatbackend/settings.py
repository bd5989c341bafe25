"""Settings read from the environment (12-factor). Every variable is documented in README.md."""

import json
import os
import re
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    return int(raw) if raw else default


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    return raw in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off "
            "(set DJANGO_DEBUG=1 for local development)."
        )
    SECRET_KEY = "dev-insecure-secret-key-only-for-local-debug-use-0123456789abcdef"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",  # full-text search (chat.search); harmless on SQLite
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "adrf",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's scripts and styles, served by us (no CDN)
    "core",
    "chatbackend",
    "accounts",
    "chat",
    "agents",
    "usage",
    "review",
    "llm",
    "attachments",
    "playground",
]

# Django's middleware with their hooks run on the event loop under ASGI instead of one thread hop
# each (chatbackend/middleware.py). Django's deploy checks look for Security, Csrf and
# XFrameOptions by their own paths: chatbackend.checks runs them for ours (the three "missing"
# warnings are replaced by chatbackend.security.W001-W003, which see these classes).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]
MIDDLEWARE = [
    "chatbackend.middleware.Security",
    "servestatic.middleware.ServeStaticMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "chatbackend.middleware.Session",
    "chatbackend.middleware.Common",
    "chatbackend.middleware.Csrf",
    "chatbackend.middleware.Authentication",
    "chatbackend.middleware.Messages",
    "chatbackend.middleware.XFrameOptions",
    "chatbackend.middleware.DatabaseUnavailable",  # a view's database fault: 503, not 500
]

ROOT_URLCONF = "chatbackend.urls"
CSRF_FAILURE_VIEW = "core.errors.csrf_failure"  # JSON, like every other error
ASGI_APPLICATION = "chatbackend.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's native psycopg pool: a stream borrows a connection only for its writes and gives it
    # back before it waits on the model, so many streams share a few connections.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN_SIZE", 2),
        "max_size": env_int("DB_POOL_MAX_SIZE", 10),
        "timeout": env_float("DB_POOL_TIMEOUT_S", 30),
    }
# The pool of the chat turn's statements run on the event loop (core.adb; PostgreSQL): its
# largest size per worker; its smallest and its timeout are the pool's above.
DB_LOOP_POOL_MAX_SIZE = env_int("DB_LOOP_POOL_MAX_SIZE", 4)
if DB_LOOP_POOL_MAX_SIZE < 1:
    raise ImproperlyConfigured("DB_LOOP_POOL_MAX_SIZE must be at least 1.")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "chatbackend"),
            # A Redis that does not answer costs this, not the OS's two-minute connect timeout
            # (the rate limits then stand aside: core.throttling).
            "OPTIONS": {
                "socket_connect_timeout": env_float("REDIS_TIMEOUT_S", 2.0),
                "socket_timeout": env_float("REDIS_TIMEOUT_S", 2.0),
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Auth -------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # jiter-based: bounded nesting (a deep body is a 400, not a RecursionError), strict JSON.
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 50),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SIMPLE_JWT = {
    "AUTH_HEADER_TYPES": ("Bearer",),
    "ACCESS_TOKEN_LIFETIME": __import__("datetime").timedelta(
        minutes=env_int("JWT_ACCESS_MINUTES", 15)
    ),
    "REFRESH_TOKEN_LIFETIME": __import__("datetime").timedelta(days=env_int("JWT_REFRESH_DAYS", 7)),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Chat backend API",
    "DESCRIPTION": (
        "Streamed Gemini chat with stored conversations, six agent workflows, usage accounting."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /api/docs/ works offline: Swagger UI from drf-spectacular-sidecar's static files, and no
    # call to the public spec validator.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    # Messages and agent runs both have a `status` with different choices: name both enums.
    "ENUM_NAME_OVERRIDES": {
        "MessageStatusEnum": "chat.models.Message.Status",
        "AgentRunStatusEnum": "agents.models.AgentRun.Status",
    },
}

# --- AI provider ------------------------------------------------------------------------------
GEMINI_API_KEY = env_str("GEMINI_API_KEY")
AI_PROVIDER = env_str("AI_PROVIDER", "gemini" if GEMINI_API_KEY else "offline").lower()
if AI_PROVIDER not in {"gemini", "offline"}:
    raise ImproperlyConfigured("AI_PROVIDER must be 'gemini' or 'offline'.")
if AI_PROVIDER == "gemini" and not GEMINI_API_KEY:
    raise ImproperlyConfigured("AI_PROVIDER=gemini needs GEMINI_API_KEY.")
GEMINI_MODEL = env_str("GEMINI_MODEL", "gemini-2.5-flash")
GEMINI_MODEL_FAST = env_str("GEMINI_MODEL_FAST", "gemini-2.5-flash")
GEMINI_MODEL_COMPLEX = env_str("GEMINI_MODEL_COMPLEX", "gemini-2.5-pro")
GEMINI_FALLBACK_MODEL = env_str("GEMINI_FALLBACK_MODEL", "gemini-2.5-flash-lite")
GEMINI_BASE_URL = env_str("GEMINI_BASE_URL") or None
GEMINI_TIMEOUT_S = env_float("GEMINI_TIMEOUT_S", 60)
GEMINI_MAX_RETRIES = env_int("GEMINI_MAX_RETRIES", 3)
GEMINI_RETRY_INITIAL_DELAY_S = env_float("GEMINI_RETRY_INITIAL_DELAY_S", 1.0)
GEMINI_RETRY_MAX_DELAY_S = env_float("GEMINI_RETRY_MAX_DELAY_S", 20.0)
GEMINI_MAX_CONNECTIONS = env_int("GEMINI_MAX_CONNECTIONS", 1000)
GEMINI_INCLUDE_THOUGHTS = env_bool("GEMINI_INCLUDE_THOUGHTS", True)
GEMINI_THINKING_BUDGET = (
    env_int("GEMINI_THINKING_BUDGET", 0) if env_str("GEMINI_THINKING_BUDGET") else None
)
GEMINI_INLINE_MAX_BYTES = env_int("GEMINI_INLINE_MAX_BYTES", 20 * 1024 * 1024)
# Inline files kept base64-encoded in each process for the next turns that send them again.
GEMINI_INLINE_CACHE_BYTES = env_int("GEMINI_INLINE_CACHE_BYTES", 32 * 1024 * 1024)
OFFLINE_CHUNK_DELAY_MS = env_int("OFFLINE_CHUNK_DELAY_MS", 30)
# The provider layer's one setting (see llm/registry.py; checked by llm/checks.py). Code outside
# llm/ asks `llm.model_for("chat" | "fast" | "complex")` and `llm.get_provider()`.
if AI_PROVIDER == "gemini":
    LLM = {
        "BACKEND": "llm.gemini.GeminiProvider",
        "OPTIONS": {
            "api_key": GEMINI_API_KEY,
            "base_url": GEMINI_BASE_URL,
            "timeout_s": GEMINI_TIMEOUT_S,
            "max_retries": GEMINI_MAX_RETRIES,
            "retry_initial_delay_s": GEMINI_RETRY_INITIAL_DELAY_S,
            "retry_max_delay_s": GEMINI_RETRY_MAX_DELAY_S,
            "max_connections": GEMINI_MAX_CONNECTIONS,
            "include_thoughts": GEMINI_INCLUDE_THOUGHTS,
            "thinking_budget": GEMINI_THINKING_BUDGET,
            "inline_max_bytes": GEMINI_INLINE_MAX_BYTES,
            "inline_cache_bytes": GEMINI_INLINE_CACHE_BYTES,
        },
        "MODELS": {
            "chat": GEMINI_MODEL,
            "fast": GEMINI_MODEL_FAST,
            "complex": GEMINI_MODEL_COMPLEX,
            "fallback": GEMINI_FALLBACK_MODEL,
        },
    }
else:
    LLM = {
        "BACKEND": "llm.offline.OfflineProvider",
        "OPTIONS": {
            "chunk_delay_ms": OFFLINE_CHUNK_DELAY_MS,
            "include_thoughts": GEMINI_INCLUDE_THOUGHTS,
        },
        "MODELS": {"chat": "offline", "fast": "offline", "complex": "offline"},
    }

# --- Cost and review -------------------------------------------------------------------------
# US dollars per 1M input and per 1M output tokens, by model name as stored on messages and usage
# records (usage.pricing). The defaults are Google's list prices for paid-tier Gemini API text at
# the time of writing (2.5 Pro: prompts up to 200k tokens): verify them against your contract and
# override as JSON, e.g. MODEL_PRICES='{"gemini-2.5-flash": {"input": 0.3, "output": 2.5}}'.
# A model without a price has no cost (shown as "—"), never a guessed one.
_DEFAULT_MODEL_PRICES = {
    "gemini-2.5-pro": {"input": 1.25, "output": 10.0},
    "gemini-2.5-flash": {"input": 0.30, "output": 2.50},
    "gemini-2.5-flash-lite": {"input": 0.10, "output": 0.40},
}
try:
    MODEL_PRICES = json.loads(env_str("MODEL_PRICES") or "null") or _DEFAULT_MODEL_PRICES
    if not isinstance(MODEL_PRICES, dict) or not all(
        isinstance(price, dict)
        and set(price) == {"input", "output"}
        and all(isinstance(v, int | float) and v >= 0 for v in price.values())
        for price in MODEL_PRICES.values()
    ):
        raise ValueError
except ValueError:
    raise ImproperlyConfigured(
        'MODEL_PRICES must be JSON like {"model": {"input": 0.3, "output": 2.5}} '
        "(dollars per 1M tokens, non-negative numbers)."
    ) from None
# The review queue's "over threshold" filter: replies that used more tokens, or cost more.
REVIEW_TOKEN_THRESHOLD = env_int("REVIEW_TOKEN_THRESHOLD", 20000)
REVIEW_COST_THRESHOLD_USD = env_float("REVIEW_COST_THRESHOLD_USD", 0.05)

# --- Limits -----------------------------------------------------------------------------------
CHAT_RATE_LIMIT = env_str("CHAT_RATE_LIMIT", "10/m")
AGENT_RATE_LIMIT = env_str("AGENT_RATE_LIMIT", "10/m")
# Logins (API and admin), per username and per client address: accounts.throttling.
AUTH_RATE_LIMIT = env_str("AUTH_RATE_LIMIT", "10/m")
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 32000)
AGENT_MAX_INPUT_CHARS = env_int("AGENT_MAX_INPUT_CHARS", 20000)
CHAT_HISTORY_TOKEN_BUDGET = env_int("CHAT_HISTORY_TOKEN_BUDGET", 24000)
STREAM_CHECKPOINT_S = env_float("STREAM_CHECKPOINT_S", 3.0)
# A reply's generation belongs to the worker, not to the request: `continue` lets it finish when
# its client goes away (to be resumed or read later); `cancel` stops it and saves it interrupted.
CHAT_ON_DISCONNECT = env_str("CHAT_ON_DISCONNECT", "continue").lower()
if CHAT_ON_DISCONNECT not in {"continue", "cancel"}:
    raise ImproperlyConfigured("CHAT_ON_DISCONNECT must be 'continue' or 'cancel'.")
# Offer Gemini's googleSearch tool: when the body asks (`webSearch: true`), always, or never.
CHAT_WEB_SEARCH = env_str("CHAT_WEB_SEARCH", "request").lower()
if CHAT_WEB_SEARCH not in {"request", "always", "off"}:
    raise ImproperlyConfigured("CHAT_WEB_SEARCH must be 'request', 'always' or 'off'.")
CHAT_MAX_FILES = env_int("CHAT_MAX_FILES", 10)
# The model that writes a conversation's title after its first reply (chat.titles); empty: the
# fast model (GEMINI_MODEL_FAST). The offline provider writes a deterministic one.
CHAT_TITLE_MODEL = env_str("CHAT_TITLE_MODEL")
# Feedback on replies (chat.feedback): ratings per user, and the categories a rating may carry.
FEEDBACK_RATE_LIMIT = env_str("FEEDBACK_RATE_LIMIT", "60/m")
FEEDBACK_CATEGORIES = env_list(
    "FEEDBACK_CATEGORIES",
    "inaccurate,unhelpful,incomplete,off-topic,unsafe,formatting,too-long,other",
)
# PostgreSQL text search configuration of conversation search (`chat.search`): its stemming and
# stop words. Changing it: `manage.py rebuild_search_indexes`.
CHAT_SEARCH_CONFIG = env_str("CHAT_SEARCH_CONFIG", "english")
if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", CHAT_SEARCH_CONFIG):
    raise ImproperlyConfigured("CHAT_SEARCH_CONFIG must name a text search configuration.")
# Threads for database bursts of work that outlives its request (generations, heartbeats).
DB_THREADS = env_int("DB_THREADS", 8)
# The cyclic garbage collector, tuned once the application is loaded (chatbackend/asgi.py): three
# thresholds (gen0 allocations, then gen1 and gen2 counts, as gc.set_threshold takes them); empty
# keeps Python's own (700,10,10).
GC_THRESHOLDS = tuple(int(n) for n in env_list("GC_THRESHOLDS", "50000,20,10"))
# A running reply or agent run whose process stopped beating for this long is marked interrupted
# (core.liveness).
STREAM_STALE_S = env_float("STREAM_STALE_S", 30.0)
if STREAM_STALE_S <= 0:
    raise ImproperlyConfigured("STREAM_STALE_S must be a positive number of seconds.")
# Running generations' frames (core.hub): kept in memory this long after the end, and with
# REDIS_URL mirrored to one Redis Stream per generation for listeners and stops on other hosts.
GENERATION_GRACE_S = env_float("GENERATION_GRACE_S", 10.0)
GENERATION_STREAM_MAXLEN = env_int("GENERATION_STREAM_MAXLEN", 10000)
GENERATION_STREAM_TTL_S = env_int("GENERATION_STREAM_TTL_S", 3600)
GENERATION_LIVE_TTL_S = env_float("GENERATION_LIVE_TTL_S", 15.0)
GENERATION_FLUSH_INTERVAL_MS = env_float("GENERATION_FLUSH_INTERVAL_MS", 0)
GENERATION_KEY_PREFIX = env_str("GENERATION_KEY_PREFIX", "chatbackend:gen")
AGENT_CACHE_TTL_S = env_int("AGENT_CACHE_TTL_S", 3600)
AGENT_MAX_CONCURRENT_WORKERS = env_int("AGENT_MAX_CONCURRENT_WORKERS", 4)
# Request bodies, enforced by core.limits.BodySizeLimit (chatbackend/asgi.py) before they are read:
# useChat resends the whole client-side history with every message, so allow for long chats; the
# chat stream and the attachment upload (files, data: URLs) allow CHAT_MAX_REQUEST_BYTES.
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 1024 * 1024)
CHAT_MAX_REQUEST_BYTES = env_int("CHAT_MAX_REQUEST_BYTES", 32 * 1024 * 1024)
# Django's own check when a view reads the body (e.g. under the test client, which bypasses the
# ASGI wrapper): the largest of the two, so that it never refuses what the wrapper allows.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(MAX_REQUEST_BYTES, CHAT_MAX_REQUEST_BYTES)

# --- Attachments ------------------------------------------------------------------------------
# The types Gemini reads (images, PDF, text, audio); each upload's bytes must match its type.
ATTACHMENT_MEDIA_TYPES = env_list(
    "ATTACHMENT_MEDIA_TYPES",
    "image/png,image/jpeg,image/webp,image/heic,image/heif,application/pdf,"
    "text/plain,text/markdown,text/csv,text/html,"
    "audio/wav,audio/mp3,audio/mpeg,audio/aiff,audio/aac,audio/ogg,audio/flac",
)
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 20 * 1024 * 1024)
ATTACHMENT_URL_TTL_S = env_int("ATTACHMENT_URL_TTL_S", 3600)
# The files of recent turns kept in each process (a continued turn sends them again): bytes in all.
ATTACHMENT_CACHE_BYTES = env_int("ATTACHMENT_CACHE_BYTES", 64 * 1024 * 1024)
ATTACHMENT_RATE_LIMIT = env_str("ATTACHMENT_RATE_LIMIT", "30/m")  # uploads per user; 0 disables
# Where the default storage keeps files when it is the local one. Not served as static media:
# attachments go out only through their signed content URL.
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT") or BASE_DIR / "media")
# The storage attachments are kept in (STORAGES["default"]): a dotted class path and its options
# as JSON, e.g. storages.backends.s3.S3Storage with {"bucket_name": "chat-files"}.
DEFAULT_STORAGE = {
    "BACKEND": env_str("DJANGO_STORAGE_BACKEND", "django.core.files.storage.FileSystemStorage"),
    "OPTIONS": json.loads(env_str("DJANGO_STORAGE_OPTIONS", "{}")),
}

# --- CORS -------------------------------------------------------------------------------------
CORS_ALLOWED_ORIGINS = env_list("FRONTEND_URL", "http://localhost:3000")
CORS_EXPOSE_HEADERS = [
    "Content-Type",
    "Cache-Control",
    "X-Accel-Buffering",
    "x-vercel-ai-ui-message-stream",
    "Retry-After",
]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "idempotency-key",
    "user-agent",
    "x-requested-with",
]

# --- Static files, i18n -----------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {
        "BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production) --------------------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # The HTTP clients and the SDK log every request at INFO; the llm.calls line says more.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "google_genai": {"level": "WARNING"},
    },
}
