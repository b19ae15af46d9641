"""A stand-in for an LLM backend in its own process: it reaches Chorus only through the HTTP
server API, with the standard library's HTTP client on one keep-alive connection (as a FastAPI
worker would with any pooled client).

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

import http.client
import json
import sys
import time
import urllib.parse


class ServerApi:
    """One keep-alive HTTP connection to Chorus (as a pooled client such as httpx would
    keep), sending the key in the header; a 429 is waited out (``Retry-After``) and sent
    again."""

    def __init__(self, url: str, key: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        while True:
            self.connection.request(
                "POST", f"/api/server/{path}", json.dumps(body).encode(), self.headers
            )
            response = self.connection.getresponse()
            answer = json.loads(response.read())
            if response.status != 429:
                return response.status, answer
            time.sleep(float(response.headers.get("Retry-After", "1")))


def main() -> None:
    job = json.load(sys.stdin)
    api, user = ServerApi(job["url"], job["key"]), job["user"]
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
        status, body = api.post(f"users/{user}/events/", {"event": "events", "data": data})
        if status != 200:
            failures.append([index, status, body])
    question = {"event": "confirm", "data": {"title": "Run the tool?"}, "timeout": 10}
    answered = api.post(f"sessions/{job['answering_sid']}/call/", question)
    silent = api.post(f"sessions/{job['silent_sid']}/call/", {**question, "timeout": 0.5})
    unknown = api.post("sessions/no-such-sid/call/", question)
    print(
        json.dumps(
            {
                "failures": failures,
                "answered": answered,
                "silent": silent,
                "unknown": unknown,
            }
        )
    )


if __name__ == "__main__":
    main()
