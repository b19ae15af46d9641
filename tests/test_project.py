"""Project-level guarantees: migrations, settings from the environment, the channel layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_makemigrations_is_clean():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def settings_in_subprocess(tmp_path, **env) -> dict:
    """Import config.settings in a fresh interpreter with ``env`` and return some values."""
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps({'layer': settings.CHANNEL_LAYERS['default'],"
        " 'cache': settings.CACHES['default']['BACKEND'],"
        " 'db': settings.DATABASES['default']['ENGINE'],"
        " 'conn_max_age': settings.DATABASES['default']['CONN_MAX_AGE'],"
        " 'secret': settings.SECRET_KEY, 'chorus': settings.CHORUS}))"
    )
    return json_from_subprocess(tmp_path, code, **env)


def json_from_subprocess(tmp_path, code: str, **env) -> dict:
    """Run ``code`` in a fresh interpreter (project settings, ``env``); its printed JSON."""
    clean = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}
    }
    clean.update({"DJANGO_SETTINGS_MODULE": "config.settings", "CHORUS_VAR_DIR": str(tmp_path)})
    clean.update(env)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=clean,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def test_embedded_default_is_sqlite_in_memory_layer_and_generated_secret(tmp_path):
    first = settings_in_subprocess(tmp_path)
    assert first["db"] == "django.db.backends.sqlite3"
    assert first["layer"]["BACKEND"] == "realtime.layers.ProcessChannelLayer"
    assert first["cache"].endswith("LocMemCache")
    assert first["conn_max_age"] == 0
    assert len(first["secret"]) >= 50
    assert (tmp_path / "secret_key").read_text().strip() == first["secret"]
    assert settings_in_subprocess(tmp_path)["secret"] == first["secret"]  # kept, not regenerated


def test_redis_url_selects_channels_redis_with_safe_connection_settings(tmp_path):
    values = settings_in_subprocess(
        tmp_path,
        REDIS_URL="redis://127.0.0.1:6379/3",
        REDIS_MAX_CONNECTIONS="500",
        REDIS_POOL_TIMEOUT="7",
    )
    layer = values["layer"]
    assert layer["BACKEND"] == "realtime.layers.RedisLayer"  # channels-redis, waiting pools
    host = layer["CONFIG"]["hosts"][0]
    assert host["address"] == "redis://127.0.0.1:6379/3"
    assert host["socket_timeout"] is None and host["max_connections"] == 500
    assert host["timeout"] == 7
    assert values["cache"] == "django.core.cache.backends.redis.RedisCache"


def test_environment_sets_secret_database_and_realtime_knobs(tmp_path):
    values = settings_in_subprocess(
        tmp_path,
        SECRET_KEY="s" * 60,
        DATABASE_URL="postgres://u@127.0.0.1:5432/x",
        WEBSOCKET_PING_INTERVAL="5",
        MAX_SOCKETS_PER_USER="3",
    )
    assert values["secret"] == "s" * 60 and not (tmp_path / "secret_key").exists()
    assert values["db"] == "django.db.backends.postgresql"
    assert values["chorus"] == {"WEBSOCKET_PING_INTERVAL": 5.0, "MAX_SOCKETS_PER_USER": 3}


@pytest.mark.parametrize(
    ("env", "threshold", "frozen"), [({}, 10_000, True), ({"GC_GEN0_THRESHOLD": "0"}, 700, False)]
)
def test_serving_process_tunes_the_garbage_collector(tmp_path, env, threshold, frozen):
    """Loading the ASGI application (what daphne and uvicorn do) applies GC_GEN0_THRESHOLD
    and freezes the startup objects; 0 leaves Python's defaults; importing settings alone
    (tests, manage.py) never touches the collector."""
    code = (
        "import gc, json; import django; django.setup(); before = gc.get_threshold()[0];"
        " import config.asgi;"
        " print(json.dumps({'before': before, 'after': gc.get_threshold()[0],"
        " 'frozen': gc.get_freeze_count()}))"
    )
    values = json_from_subprocess(tmp_path, code, **env)
    assert values["before"] == 700
    assert values["after"] == threshold
    assert (values["frozen"] > 0) is frozen


def test_secret_key_file_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "var/secret_key"], cwd=ROOT)
    assert ignored.returncode == 0


def run_check_services(**env) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run(
        [sys.executable, "scripts/check_services.py"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_services_gate_fails_when_postgres_and_redis_are_unreachable():
    result = run_check_services(
        DATABASE_URL="postgres://postgres@127.0.0.1:1/test", REDIS_URL="redis://127.0.0.1:1/0"
    )
    assert result.returncode == 1
    assert "PostgreSQL" in result.stdout and "Redis" in result.stdout


@pytest.mark.services
def test_services_gate_passes_with_the_real_services(database_url, redis_url):
    result = run_check_services(DATABASE_URL=database_url, REDIS_URL=redis_url)
    assert result.returncode == 0, result.stdout


def test_http_settings_from_the_environment(tmp_path):
    """TRUSTED_PROXIES is parsed at startup (a bad entry stops it); Django's own body limit
    follows MAX_REQUEST_BODY_BYTES."""
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        " print(json.dumps({'proxies': [str(n) for n in settings.TRUSTED_PROXIES],"
        " 'cap': settings.MAX_REQUEST_BODY_BYTES, 'django': settings.DATA_UPLOAD_MAX_MEMORY_SIZE}))"
    )
    default = json_from_subprocess(tmp_path, code)
    assert default == {"proxies": [], "cap": 16 * 1024 * 1024, "django": 16 * 1024 * 1024}
    values = json_from_subprocess(
        tmp_path, code, TRUSTED_PROXIES="10.0.0.0/8, ::1", MAX_REQUEST_BODY_BYTES="1000"
    )
    assert values == {"proxies": ["10.0.0.0/8", "::1/128"], "cap": 1000, "django": 1000}
    with pytest.raises(subprocess.CalledProcessError) as failed:
        json_from_subprocess(tmp_path, code, TRUSTED_PROXIES="nginx")
    assert "TRUSTED_PROXIES: 'nginx'" in failed.value.stderr


def test_redis_sentinel_settings_reach_the_layer_and_the_cache(tmp_path):
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps({'url': settings.REDIS_URL,"
        " 'host': settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0],"
        " 'cache': settings.CACHES['default']}))"
    )
    values = json_from_subprocess(
        tmp_path,
        code,
        REDIS_SENTINELS="10.0.0.1:26390, sentinel-b",
        REDIS_SENTINEL_MASTER="chorus-master",
        REDIS_SENTINEL_PASSWORD="sentinel-secret",
    )
    assert values["url"] == "redis://chorus-master/0"  # REDIS_URL unset: the master, db 0
    for options in (values["host"], values["cache"]["OPTIONS"]):
        assert options["sentinels"] == [["10.0.0.1", 26390], ["sentinel-b", 26379]]
        assert options["service_name"] == "chorus-master"
        assert options["sentinel_kwargs"]["password"] == "sentinel-secret"
    assert values["cache"]["OPTIONS"]["pool_class"] == "config.redis.SentinelPool"
    assert values["cache"]["LOCATION"] == values["host"]["address"] == values["url"]


def test_a_malformed_sentinel_entry_stops_the_start_naming_it(tmp_path):
    with pytest.raises(subprocess.CalledProcessError) as failed:
        json_from_subprocess(tmp_path, "import django; django.setup()", REDIS_SENTINELS="h:x")
    assert "REDIS_SENTINELS: 'h:x' is not host:port" in failed.value.stderr
