"""Django settings for Chorus, read from the environment.

Every variable is documented in one table: docs/configuration.md. Nothing here is a secret:
``SECRET_KEY`` comes from the environment or, when unset, from ``var/secret_key`` which is
generated once on first start and never committed.

Two shapes, chosen only by configuration:
- embedded default (no DATABASE_URL / REDIS_URL): SQLite file under var/, in-memory channel
  layer, local-memory cache; one process.
- scaled: DATABASE_URL=postgres://… and REDIS_URL=redis://… (or REDIS_SENTINELS for Redis
  Sentinel) for many daphne processes.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ

from config.proxies import parse_networks
from config.redis import parse_sentinels, sentinel_options
from realtime.conf import DEFAULTS as REALTIME_DEFAULTS
from realtime.origins import normalised_origins

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("CHORUS_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
# A local .env file is optional; real environment variables win over it.
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else a key generated once into var/secret_key."""
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Browser origins (scheme://host[:port]) allowed to open WebSockets besides ALLOWED_HOSTS, and
# to call /api/ (django-cors-headers). Stored normalised (realtime/origins.py) so that both
# checks agree on every entry: case, default ports, IPv6 form; a malformed entry is dropped.
CORS_ALLOWED_ORIGINS = normalised_origins(env.list("CORS_ALLOWED_ORIGINS", default=[]))
# Serve /static/ from the app (embedded default). Behind a proxy: false + collectstatic.
SERVE_STATIC = env.bool("SERVE_STATIC", default=True)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "adrf",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "rest_framework_simplejwt.token_blacklist",
    "channels",
    "accounts",
    "channels_app",
    "notes",
    "realtime",
    "serverapi",
    "demo",
]

MIDDLEWARE = [
    # First: a CORS preflight is answered before anything else runs (no authentication).
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # A request id for the logs (X-Request-ID: a safe one is kept, else one is made).
    "config.logs.RequestIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The middleware of the endpoints only backends call (the server API, /api/server/:
# config/handlers.py): async-native ones only, so that no request hops to a worker thread.
BACKEND_MIDDLEWARE = ["config.logs.RequestIdMiddleware"]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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

# --- Database -------------------------------------------------------------------------------
# Under ASGI, ORM calls run in worker threads that come and go (one per HTTP request context),
# so persistent connections (CONN_MAX_AGE > 0) would leak per thread: CONN_MAX_AGE stays 0.
# On PostgreSQL, Django's native connection pool (psycopg_pool) makes the per-call "connect"
# a pool checkout instead of a new server connection. Socket code does not open per call at
# all: realtime/db.py runs it on one thread that keeps one connection open.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'chorus.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=20),
        "timeout": 10,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock up front so
    # two writers queue (busy timeout) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests use a file (not :memory:) so a real daphne subprocess can share the test database.
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / env.str("TEST_DATABASE_NAME", default="test.sqlite3"))
    }
elif "TEST_DATABASE_NAME" in env:
    DATABASES["default"]["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME")}

# --- Redis: channel layer and cache -----------------------------------------------------------
# Redis Sentinel (docs/operations.md): the sentinels ("host:port,host:port") and the name of
# the master they watch. With them REDIS_URL gives only the master's credentials, database and
# TLS choice (its host and port are not used); unset, it is redis://<master>/0. Every Redis
# pool is built by config/redis.py.
REDIS_SENTINELS = parse_sentinels(env.list("REDIS_SENTINELS", default=[]))
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_SENTINELS and not REDIS_URL:
    REDIS_URL = f"redis://{REDIS_SENTINEL_MASTER}/0"
# Messages a channel-layer channel may queue before new ones are dropped (and counted).
CHANNEL_LAYER_CAPACITY = env.int("CHANNEL_LAYER_CAPACITY", default=10_000)
# Connections each of a process's Redis pools (channel layer, cache, session registry) may
# open; a burst beyond it waits up to REDIS_POOL_TIMEOUT seconds for a free one.
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=1_000)
REDIS_POOL_TIMEOUT = env.float("REDIS_POOL_TIMEOUT", default=20.0)

if REDIS_URL:
    CHANNEL_LAYERS: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "realtime.layers.RedisLayer",
            "CONFIG": {
                # redis-py 8's 5 s socket timeout kills blocking receives under load; its pool
                # fails when full: RedisLayer's waits (REDIS_POOL_TIMEOUT) instead.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "socket_timeout": None,
                        "max_connections": REDIS_MAX_CONNECTIONS,
                        "timeout": REDIS_POOL_TIMEOUT,
                        **sentinel_options(
                            REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD
                        ),
                    }
                ],
                "prefix": "chorus:layer:",
                "capacity": CHANNEL_LAYER_CAPACITY,
                "expiry": 60,
                "group_expiry": 86400,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "chorus",
            "OPTIONS": {
                "pool_class": (
                    "config.redis.SentinelPool"
                    if REDIS_SENTINELS
                    else "redis.BlockingConnectionPool"
                ),
                "max_connections": REDIS_MAX_CONNECTIONS,
                "timeout": REDIS_POOL_TIMEOUT,
                **sentinel_options(REDIS_SENTINELS, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD),
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.ProcessChannelLayer",
            "CONFIG": {"capacity": CHANNEL_LAYER_CAPACITY, "expiry": 60, "group_expiry": 86400},
        }
    }
    # Django's default MAX_ENTRIES (300) would cull the cached "not revoked" answer of every
    # live token beyond the 300th; entries are a few hundred bytes.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "OPTIONS": {"MAX_ENTRIES": env.int("LOCAL_CACHE_MAX_ENTRIES", default=100_000)},
        }
    }

# --- Auth and tokens --------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

JWT_ACCESS_TTL = env.int("JWT_ACCESS_TTL", default=15 * 60)
JWT_REFRESH_TTL = env.int("JWT_REFRESH_TTL", default=14 * 24 * 3600)
# A "not revoked" answer for a jti is cached this long (seconds); "revoked" until the token's
# own expiry. Bounds staleness where the cache is not shared between processes.
JWT_REVOCATION_CACHE_TTL = env.int("JWT_REVOCATION_CACHE_TTL", default=30)
# A WebSocket connection ticket (POST /api/auth/ws-ticket/) is good for one connection within
# this many seconds (accounts/tickets.py).
WS_TICKET_TTL = env.float("WS_TICKET_TTL", default=30.0)
# Password logins per client address and username (DRF rate syntax); empty disables.
LOGIN_THROTTLE_RATE = env.str("LOGIN_THROTTLE_RATE", default="30/min") or None

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=JWT_ACCESS_TTL),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=JWT_REFRESH_TTL),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": env.str("JWT_SIGNING_KEY", default="") or SECRET_KEY,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.SafeJSONParser"],
    "EXCEPTION_HANDLER": "config.api_errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# --- CORS for the REST API (django-cors-headers; origins: CORS_ALLOWED_ORIGINS above) -------
# Only /api/: the Socket.IO path never reaches Django (realtime/consumers/polling.py answers
# its own CORS). No credentials: the API authenticates by the Authorization header alone, so
# a cross-origin page never needs cookies, and the admin's session cookie is never sent along.
CORS_URLS_REGEX = r"^/api/"
CORS_ALLOW_CREDENTIALS = False
# Readable by a cross-origin page: when to retry after a 429, why a 401.
CORS_EXPOSE_HEADERS = ["Retry-After", "WWW-Authenticate"]

# --- OpenAPI schema (drf-spectacular): /api/schema/, Swagger UI at /api/docs/ -----------------
SPECTACULAR_SETTINGS = {
    "TITLE": "Chorus API",
    "DESCRIPTION": (
        'The REST API of Chorus. Errors are `{"error": {"code", "message", '
        '"fields"?}}` (docs/protocol.md §10); authenticate with `Authorization: Bearer '
        "<access token>` from `POST /api/auth/token/`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Three choice sets share the field name "role": a name each.
    "ENUM_NAME_OVERRIDES": {
        "UserRoleEnum": "accounts.models.Role",
        "MemberRoleEnum": "channels_app.models.MemberRole",
        "AssignableMemberRoleEnum": ["member", "manager"],
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.openapi.add_error_responses",
    ],
    # Swagger UI's files from drf-spectacular-sidecar under /static/: no CDN, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- HTTP: client address, request bodies (table: docs/configuration.md) ---------------------
# Reverse proxies whose X-Forwarded-For / -Proto are believed (IPs or CIDRs): config/proxies.py.
TRUSTED_PROXIES = parse_networks(env.list("TRUSTED_PROXIES", default=[]))
# Largest HTTP request body, bytes: a JSON 413 before Django reads it (config/body_limit.py).
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=16 * 1024 * 1024)
# Django's own limit, the same: a body under the cap is never refused by Django.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Under daphne, refuse an oversize body while it arrives, before daphne buffers it.
DAPHNE_BODY_LIMIT = env.bool("DAPHNE_BODY_LIMIT", default=True)

# --- Metrics: GET /metrics (config/monitoring.py; off unless one of these is set) -------------
# Bearer token a scraper must present; empty: no token asked.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Client addresses (IPs or CIDRs, as TRUSTED_PROXIES) allowed to scrape; empty: any address.
METRICS_ALLOWED_ADDRESSES = parse_networks(env.list("METRICS_ALLOWED_ADDRESSES", default=[]))

# --- Server API for backends (table: docs/configuration.md; docs/server-api.md) -------------
# Requests per second per API key, counted across instances in the cache; 0: no limit.
SERVER_API_RATE_LIMIT = env.int("SERVER_API_RATE_LIMIT", default=1000)
# Longest a call to a session may wait for the client's answer, seconds.
SERVER_API_CALL_TIMEOUT_MAX = env.float("SERVER_API_CALL_TIMEOUT_MAX", default=300.0)

# --- Realtime knobs (table: docs/configuration.md; defaults: realtime/conf.py) ---------------
_REALTIME_PARSERS = {bool: env.bool, int: env.int, float: env.float, str: env.str}
CHORUS = {
    name: _REALTIME_PARSERS[type(default)](name)
    for name, default in REALTIME_DEFAULTS.items()
    if name in env
}

# --- Misc -------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="")
# The demo page at / (docs/demo.md): on by default in the embedded setup (no DATABASE_URL).
DEMO_ENABLED = env.bool("DEMO_ENABLED", default="DATABASE_URL" not in env)

# Log lines: "text" (the default) or "json", one object per line (config/logs.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "config.logs.ContextFilter"},
        "redact": {"()": "config.logs.RedactFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "config.logs.json_formatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    # Every other logger (Django, daphne, Twisted, redis, …): LOG_ROOT_LEVEL.
    "root": {"handlers": ["console"], "level": env.str("LOG_ROOT_LEVEL", default="WARNING")},
    "loggers": {
        "chorus": {
            "handlers": ["console"],
            "level": env.str("LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
    },
}
