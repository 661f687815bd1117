"""The extractor may be a bull@4 worker or a bullmq@5 Worker: both consume the daemon's jobs, and
the daemon books what they did the same way. The same test, with a real worker of each library
(tests/interop/extractor.js and tests/interop/bullmq.js) on a real redis-server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support import (
    INTEROP,
    SECRET_MARK,
    Daemon,
    NodeProcess,
    cookie_jar,
    daemon_env,
    node_queue,
    wait_for,
    write_atomic,
    youtube_daemon,
)

QUEUE = "cookie-refresh"
BASE = f"bull:{QUEUE}:"
FINISHED = "cookie_supervisor_refresh_jobs_finished_total"
WORKERS = {
    "bull@4": ("extractor.js",),
    "bullmq@5": ("bullmq.js", "worker"),
}


def start_worker(kind: str, redis_url: str, **env: str) -> NodeProcess:
    script, *args = WORKERS[kind]
    if kind == "bullmq@5":
        assert (INTEROP / "node_modules" / "bullmq").is_dir(), "run `npm ci` in tests/interop"
    worker = NodeProcess(script, {"REDIS_URL": redis_url, **env}, *args)
    [ready] = worker.wait("ready")
    if kind == "bullmq@5":
        assert ready["version"].startswith("5."), ready  # the library this test is about
    return worker


def bullmq_counts(redis_url: str) -> dict[str, int]:
    """bullmq's own Queue.getJobCounts() for the queue."""
    found: dict[str, int] = node_queue(redis_url, QUEUE, "counts", script="bullmq.js")
    return found


def counts_agree(d: Daemon, redis_url: str) -> dict[str, Any]:
    """The daemon's queue-status equals both libraries' own counts; returns the daemon's."""
    status: dict[str, Any] = d.get("/api/cookies/queue-status").json()["status"]
    states = ("waiting", "active", "completed", "failed", "delayed", "paused")
    for theirs in (node_queue(redis_url, QUEUE, "counts"), bullmq_counts(redis_url)):
        assert {s: status[s] for s in states} == {s: theirs[s] for s in states}, (status, theirs)
    return status


@pytest.mark.parametrize("kind", list(WORKERS))
def test_a_worker_of_either_library_completes_the_daemons_job(
    kind: str, redis_url: str, jar: Path, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh.txt"
    write_atomic(fresh, cookie_jar(mark=SECRET_MARK + "New"))  # a new login session
    d = youtube_daemon(redis_url, jar)  # validates online (the stand-in), so it can verify
    worker = start_worker(kind, redis_url, JAR_FILE=str(fresh))
    try:
        answer = d.post("/api/cookies/trigger-refresh", json={"reason": "manual_trigger"}).json()
        assert answer["state"] == "enqueued", answer
        [job] = worker.wait("processing")
        assert job["id"] == answer["job_id"]
        assert job["data"]["source"] == "default" and job["data"]["cookies_file"] == str(jar)
        assert job["data"]["detail"] == "manual_trigger"
        worker.wait("completed")
        wait_for(lambda: d.metric(FINISHED, source="default", outcome="completed") == 1)
        assert d.metric(FINISHED, source="default", outcome="failed") == 0
        wait_for(lambda: d.status()["refresh"]["pending_job"] is None, what="no pending job")
        wait_for(lambda: counts_agree(d, redis_url)["completed"] == 1, what="counts")
        status = counts_agree(d, redis_url)
        assert status["waiting"] == status["active"] == status["failed"] == 0
        assert status["total"] == 1
        # The upload was seen as a new session and a validation on it passed: verified. (An
        # offline-only daemon could only say `unverified`: it cannot look online.)
        d.wait_one_verdict("verified")
    finally:
        worker.stop()
        d.stop()


@pytest.mark.parametrize("kind", list(WORKERS))
def test_a_job_failing_every_attempt_is_booked_failed_once(
    kind: str, redis_url: str, jar: Path
) -> None:
    env = daemon_env(
        redis_url, jar, COOKIE_SUPERVISOR_JOB_ATTEMPTS="2", COOKIE_SUPERVISOR_JOB_BACKOFF="0.05s"
    )
    d = Daemon(env=env).start()
    worker = start_worker(kind, redis_url, FAIL_ATTEMPTS="99")
    try:
        answer = d.post("/api/cookies/trigger-refresh", json={"reason": "test"}).json()
        assert answer["state"] == "enqueued", answer
        worker.wait("failed", 2)  # both attempts, the retry after bull's exponential backoff
        wait_for(lambda: d.metric(FINISHED, source="default", outcome="failed") == 1)
        assert d.metric(FINISHED, source="default", outcome="completed") == 0
        failed = redis.Redis.from_url(redis_url).zrange(BASE + "failed", 0, -1)
        assert failed == [answer["job_id"].encode()]
        status = counts_agree(d, redis_url)
        assert (status["failed"], status["waiting"], status["delayed"]) == (1, 0, 0)
        assert d.status()["refresh"]["consecutive_failures"] == 1
    finally:
        worker.stop()
        d.stop()
