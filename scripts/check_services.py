"""Exit 0 when DATABASE_URL (PostgreSQL) and REDIS_URL answer, else print why and exit 1."""

import os
import sys

import environ
import psycopg
import redis


def main() -> int:
    problems = []
    db = environ.Env.db_url_config(os.environ["DATABASE_URL"])
    try:
        psycopg.connect(
            dbname=db["NAME"],
            user=db.get("USER") or None,
            password=db.get("PASSWORD") or None,
            host=db.get("HOST") or None,
            port=db.get("PORT") or None,
            connect_timeout=3,
        ).close()
    except Exception as exc:  # any failure means "unreachable"
        problems.append(f"PostgreSQL at DATABASE_URL unreachable ({exc.__class__.__name__})")
    try:
        redis.Redis.from_url(os.environ["REDIS_URL"], socket_connect_timeout=3).ping()
    except Exception as exc:
        problems.append(f"Redis at REDIS_URL unreachable ({exc.__class__.__name__})")
    if problems:
        print("; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
