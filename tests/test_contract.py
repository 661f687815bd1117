"""The download backend's original integration documentation, word for word.

The request bodies below are copied verbatim (whitespace included) from that document's examples,
and so are the answers it documents: a caller written against it must keep working. Each test sends
the body as the documentation does (curl's `-H "Content-Type: application/json" -d '...'`) to a real
daemon on a real redis-server, and compares every field the documentation shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import Daemon, daemon_env, node_queue

QUEUE = "cookie-refresh"

# "Trigger Cookie Refresh": its request and its documented response.
API_EXAMPLE_BODY = b'{\n  "reason": "manual_trigger"\n}'
API_EXAMPLE_ANSWER = """{
  "success": true,
  "message": "Cookie refresh job triggered successfully",
  "reason": "manual_trigger"
}"""
# "Testing", step 2: `curl -X POST ... -d '{"reason": "test"}'`.
TESTING_BODY = b'{"reason": "test"}'
# "Check Queue Status": the documented response.
QUEUE_STATUS_ANSWER = """{
  "success": true,
  "queue": "cookie-refresh",
  "status": {
    "waiting": 0,
    "active": 1,
    "completed": 5,
    "failed": 0,
    "total": 6
  }
}"""
# "Check Cookies File Status": the documented response.
COOKIES_STATUS_ANSWER = """{
  "exists": true,
  "configured": true,
  "path": "/opt/ytdl/youtube_cookies.txt",
  "size_bytes": 1234,
  "last_modified": 1708473600.0,
  "message": "Cookies file found"
}"""
DOCUMENTED_MESSAGE = "Cookie refresh job triggered successfully"
HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def daemon(redis_url: str, jar: Path) -> Iterator[Daemon]:
    d = Daemon(env=daemon_env(redis_url, jar)).start()
    yield d
    d.stop()


def trigger(d: Daemon, body: bytes) -> dict[str, Any]:
    r = d.post("/api/cookies/trigger-refresh", content=body, headers=HEADERS)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer


def job_data(redis_url: str, job_id: str) -> dict[str, Any]:
    with redis.Redis.from_url(redis_url) as r:
        data: dict[str, Any] = json.loads(r.hget(f"bull:{QUEUE}:{job_id}", "data") or b"null")
    return data


@pytest.mark.parametrize(
    ("body", "word"), [(API_EXAMPLE_BODY, "manual_trigger"), (TESTING_BODY, "test")]
)
def test_the_documented_trigger_bodies_make_a_job_and_echo_the_reason(
    daemon: Daemon, redis_url: str, body: bytes, word: str
) -> None:
    answer = trigger(daemon, body)
    documented = json.loads(API_EXAMPLE_ANSWER)
    assert answer["success"] is documented["success"] is True
    assert answer["message"] == documented["message"] == DOCUMENTED_MESSAGE
    assert answer["reason"] == word  # echoed exactly as sent
    assert answer["triggered"] is True and answer["state"] == "enqueued"
    assert answer["classified_as"] == "manual" and answer["forced"] is False
    data = job_data(redis_url, answer["job_id"])
    assert data["reason"] == "manual" and data["detail"] == word and data["origin"] == "api"
    # The same body again: the job is pending, so it is that job, and still "triggered".
    again = trigger(daemon, body)
    assert again["state"] == "coalesced" and again["job_id"] == answer["job_id"]
    assert again["triggered"] is True and again["reason"] == word and again["success"] is True
    assert node_queue(redis_url, QUEUE, "counts")["waiting"] == 1


def test_the_api_example_answer_has_every_documented_field_with_its_type(daemon: Daemon) -> None:
    answer = trigger(daemon, API_EXAMPLE_BODY)
    for key, value in json.loads(API_EXAMPLE_ANSWER).items():
        assert answer[key] == value, key


def test_force_always_makes_a_job_whatever_the_reason(daemon: Daemon, redis_url: str) -> None:
    # An error fresh cookies would not fix, a word nobody knows, and force: a person overrules.
    body = {"reason": "whatever", "error": "ERROR: Connection refused", "force": True}
    r = daemon.post("/api/cookies/trigger-refresh", json=body)
    answer = r.json()
    assert answer["state"] == "enqueued" and answer["triggered"] is True, answer
    assert answer["forced"] is True and answer["message"] == DOCUMENTED_MESSAGE
    assert answer["reason"] == "whatever" and answer["classified_as"] == "manual"
    assert job_data(redis_url, answer["job_id"])["reason"] == "manual"


def test_a_report_with_error_is_classified_not_obeyed(daemon: Daemon, redis_url: str) -> None:
    body = {"reason": "manual_trigger", "error": "ERROR: [generic] x: Connection refused"}
    answer = daemon.post("/api/cookies/trigger-refresh", json=body).json()
    assert answer["success"] is True and answer["reason"] == "manual_trigger"
    assert (answer["state"], answer["triggered"]) == ("ignored", False)
    assert answer["classified_as"] == "network_error" and answer["message"] != DOCUMENTED_MESSAGE
    with redis.Redis.from_url(redis_url) as r:
        assert not [k for k in r.keys(f"bull:{QUEUE}:*") if k.rsplit(b":", 1)[-1].isdigit()]


def test_queue_status_answers_the_documented_fields(daemon: Daemon, redis_url: str) -> None:
    trigger(daemon, TESTING_BODY)
    answer = daemon.get("/api/cookies/queue-status").json()
    documented = json.loads(QUEUE_STATUS_ANSWER)
    assert answer["success"] is documented["success"] is True
    assert answer["queue"] == documented["queue"] == QUEUE
    for key, value in documented["status"].items():
        assert type(answer["status"][key]) is type(value), key
    # The counts are the queue's, as bull itself reads them, and `total` is their sum.
    bull = node_queue(redis_url, QUEUE, "counts")
    for key in ("waiting", "active", "completed", "failed"):
        assert answer["status"][key] == bull[key], key
    assert answer["status"]["waiting"] == 1
    assert answer["status"]["total"] == sum(v for k, v in answer["status"].items() if k != "total")


def test_cookies_status_answers_the_documented_fields(daemon: Daemon, jar: Path) -> None:
    answer = daemon.get("/api/cookies/cookies-status").json()
    documented = json.loads(COOKIES_STATUS_ANSWER)
    for key, value in documented.items():
        assert type(answer[key]) is type(value), key
    st = os.stat(jar)
    assert answer["exists"] is True and answer["configured"] is True
    assert answer["path"] == str(jar) and answer["size_bytes"] == st.st_size
    assert answer["last_modified"] == pytest.approx(st.st_mtime)
    assert answer["message"] == documented["message"]
