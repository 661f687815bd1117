"""Foreign jobs with malformed fields in the queue: every poll still sees our own job's end.

Anyone with access to Redis may write a bull job: another producer, an older worker, a person with
redis-cli. What bull.py reads back is parsed with bounds, a job nobody can read is skipped alone.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from cookie_supervisor.bull import BullQueue
from tests.support import Daemon, NodeProcess, cookie_jar, daemon_env, wait_for, write_atomic

BASE = "bull:cookie-refresh:"
NOW_MS = int(time.time() * 1000)
# (finishedOn, attemptsMade, timestamp, failedReason, data) of foreign finished jobs
MALFORMED: list[tuple[bytes | str, ...]] = [
    ("abc", "1", "1000", "x", "{}"),
    ("1e999", "1", "1000", "x", "{}"),
    ("9" * 400, "1", "1000", "x", "{}"),
    ("NaN", "1", "1000", "x", "{}"),
    ("-5", "1", "1000", "x", "{}"),
    (str(NOW_MS), "many", "yesterday", b"\xff\xfe bad utf-8", b"\xff{"),
    (str(NOW_MS), "1" * 50, "inf", "r" * 100_000, "[" * 100_000),
]


def plant(r: redis.Redis, n: int = 0) -> None:
    for i, (finished, attempts, ts, failed, data) in enumerate(MALFORMED):
        job = f"foreign-{n}-{i}"
        r.hset(
            BASE + job,
            mapping={
                "finishedOn": finished,
                "attemptsMade": attempts,
                "timestamp": ts,
                "failedReason": failed,
                "data": data,
            },
        )
        r.zadd(BASE + ("failed" if i % 2 else "completed"), {job: NOW_MS - 10})
    r.zadd(BASE + "completed", {b"\xff\xfeid": NOW_MS - 10})  # an id that is not UTF-8


async def test_malformed_foreign_jobs_are_skipped_or_bounded_never_raised(
    queue: BullQueue, redis_url: str
) -> None:
    r = redis.Redis.from_url(redis_url)
    plant(r)
    r.hset(BASE + "ours", mapping={"finishedOn": NOW_MS, "data": '{"source":"default"}'})
    r.zadd(BASE + "completed", {"ours": NOW_MS})
    jobs = await queue.finished_since(0)
    by_id = {j.job_id: j for j in jobs}
    assert by_id["ours"].source == "default" and by_id["ours"].finished_at == NOW_MS / 1000
    # the five without a usable finishedOn are skipped; the others are read with bounds
    assert not any(f"foreign-0-{i}" in by_id for i in range(5))
    odd, big = by_id["foreign-0-5"], by_id["foreign-0-6"]
    assert (
        odd.attempts_made == 0 and odd.created_at == 0 and "bad utf-8" in (odd.failed_reason or "")
    )
    assert big.attempts_made == 0 and big.created_at == 0 and len(big.failed_reason or "") <= 4096
    assert (await queue.counts()).completed >= 1


async def test_absurd_backoff_fields_read_as_no_backoff(queue: BullQueue, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    marker = "cookie-supervisor:bull:cookie-refresh:pending:default"
    for failures, until in [("x", "y"), ("9" * 400, "1e999"), ("-1", "NaN")]:
        r.hset(marker, mapping={"failures": failures, "backoff_until": until})
        state = await queue.backoff_state("default")
        assert state.failures == 0 and state.until is None


def test_daemon_sees_its_job_end_past_malformed_foreign_jobs(
    redis_url: str, tmp_path: Path
) -> None:
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    r = redis.Redis.from_url(redis_url)
    plant(r)
    # and one stamped in the year 9000: it must not move the daemon's cursor past our job
    r.hset(BASE + "future", mapping={"finishedOn": 221_845_392_000_000, "data": "{}"})
    r.zadd(BASE + "completed", {"future": 221_845_392_000_000})
    d = Daemon(env=daemon_env(redis_url, jar)).start()
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        worker.wait("ready")
        answer = d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).json()
        assert answer["state"] == "enqueued", answer
        plant(r, 1)  # more arrive while the job runs
        worker.wait("completed")
        done = "cookie_supervisor_refresh_jobs_finished_total"
        wait_for(lambda: d.metric(done, source="default", outcome="completed") == 1, what="seen")
        wait_for(lambda: d.status()["refresh"]["pending_job"] is None, what="no pending job")
        again = d.post("/api/cookies/trigger-refresh", json={"reason": "manual"}).json()
        assert again["state"] != "coalesced", again  # not stuck on a job that finished
        assert "queue poll failed" not in d.log()
    finally:
        worker.stop()
        d.stop()
