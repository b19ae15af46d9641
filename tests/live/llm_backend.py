"""A stand-in for an LLM backend in its own process: it reaches Chorus only through the HTTP
server API, with the standard library (as a FastAPI worker would with any HTTP client).

``python llm_backend.py`` reads one JSON object on stdin — ``{"url", "key", "user", "deltas",
"answering_sid", "silent_sid"}`` — and then, against ``url``:

1. posts ``deltas`` token deltas for ``user``, one request after the other, as Open WebUI's
   event emitter does (event ``events``, ``{"chat_id", "message_id", "data": {"type":
   "chat:completion", "data": {"content": <token>, "index": i}}}``), honouring 429s;
2. calls ``answering_sid`` (event ``confirm``) and records the answer;
3. calls ``silent_sid`` with a short timeout, and a sid that does not exist.

It prints one JSON object: the statuses and bodies of what it did.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request


def call(url: str, key: str, path: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{url}/api/server/{path}",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    while True:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as error:
            if error.code == 429:  # the documented answer: wait Retry-After, send again
                time.sleep(float(error.headers.get("Retry-After", "1")))
                continue
            return error.code, json.load(error)


def main() -> None:
    job = json.load(sys.stdin)
    url, key, user = job["url"], job["key"], job["user"]
    failures = []
    for index in range(job["deltas"]):
        data = {
            "chat_id": "chat-1",
            "message_id": "message-1",
            "data": {
                "type": "chat:completion",
                "data": {"content": f"tok{index} ", "index": index},
            },
        }
        status, body = call(url, key, f"users/{user}/events/", {"event": "events", "data": data})
        if status != 200:
            failures.append([index, status, body])
    question = {"event": "confirm", "data": {"title": "Run the tool?"}, "timeout": 10}
    answered = call(url, key, f"sessions/{job['answering_sid']}/call/", question)
    silent = call(url, key, f"sessions/{job['silent_sid']}/call/", {**question, "timeout": 0.5})
    unknown = call(url, key, "sessions/no-such-sid/call/", question)
    print(
        json.dumps(
            {"failures": failures, "answered": answered, "silent": silent, "unknown": unknown}
        )
    )


if __name__ == "__main__":
    main()
