"""The bench databases before a run: PostgreSQL's created if absent, Redis's ``chorus*`` keys
deleted, and the fixture (users, channels, notes, tokens) written by bench/setup_data.py;
before every Chorus collab suite the bench notes emptied again (``reset_documents``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.config import BENCH, PYTHON, Config, Paths, log
from bench.servers import ServerSpec, chorus_env


def ensure_postgres(url: str) -> None:
    """Create the database named in ``url`` unless it exists."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(
        base.replace("postgres://", "postgresql://") + "/postgres", autocommit=True
    ) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def clean_redis(url: str) -> None:
    """Delete the keys Chorus uses (``chorus*``) in the bench's Redis database only."""
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter("chorus*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()


def reset_documents(cfg: Config, vendor: str, urls: dict, paths: Paths) -> None:
    """Empty the bench notes of the ``vendor`` database (state, data, update log): a collab
    suite on Chorus starts from empty documents, as the peers (documents in memory, a fresh
    server per suite) always do — not from what earlier suites and rounds wrote."""
    env = chorus_env(cfg, ServerSpec("setup", "chorus", (), db=vendor), urls, paths)
    done = subprocess.run(
        [PYTHON, str(BENCH / "setup_data.py"), "--reset-docs"],
        cwd=paths.chorus_root,
        env={**env, "BENCH_CHORUS_ROOT": str(paths.chorus_root)},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"bench/setup_data.py --reset-docs failed: {done.stderr[-2000:]}")
    log(f"  {done.stdout.strip()} ({vendor})")


def make_fixture(cfg: Config, vendor: str, urls: dict, paths: Paths) -> Path:
    """Fill the ``vendor`` (sqlite | postgres) bench database; the fixture JSON's path."""
    out = paths.var / f"fixture-{vendor}.json"
    env = chorus_env(cfg, ServerSpec("setup", "chorus", (), db=vendor), urls, paths)
    users = max(cfg.users, cfg.docs * cfg.editors, cfg.ack_sockets)
    subprocess.run(
        [
            PYTHON,
            str(BENCH / "setup_data.py"),
            "--users",
            str(users),
            "--solo",
            str(cfg.ack_sockets),
            "--docs",
            str(cfg.docs),
            "--editors",
            str(cfg.editors),
            "--out",
            str(out),
        ],
        cwd=paths.chorus_root,
        env={**env, "BENCH_CHORUS_ROOT": str(paths.chorus_root)},
        check=True,
    )
    return out
