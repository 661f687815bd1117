"""A job nobody takes: how long the pending refresh job has waited, and whether a worker holds it.

`BullQueue.pending_progress` against a real redis-server and a real bull@4 worker; the core keeps
what the poll read; the gauges and the two alerts (CookieRefreshJobNotTaken, CookieRefreshJobStuck,
promtool-tested in alerts/tests) read those gauges.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from cookie_supervisor import core
from cookie_supervisor.bull import BullQueue, JobOptions
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import PendingJob, QueueObserved, RefreshAsked
from tests.corekit import T0, Harness, enqueued, jar
from tests.support import Daemon, NodeProcess, daemon_env, source_config, wait_for

QUEUE = "cookie-refresh"
BASE = f"bull:{QUEUE}:"
SINCE = "cookie_supervisor_refresh_pending_since_timestamp_seconds"
ACTIVE = "cookie_supervisor_refresh_pending_active"
ACTIVE_SINCE = "cookie_supervisor_refresh_pending_active_since_timestamp_seconds"
TIMEOUT = "cookie_supervisor_refresh_upload_timeout_seconds"


# --- the core ----------------------------------------------------------------------------------


def test_the_core_keeps_the_pending_jobs_progress_and_forgets_it_with_the_job() -> None:
    h = Harness()
    h.file(jar())
    ask = enqueued(h(RefreshAsked("main", Reason.MANUAL, "api")))
    h.now = T0 + 3
    h.answer(ask, "enqueued", job_id="9")
    assert h.src.pending_progress == PendingJob(T0 + 3)  # ours: created now, until the next poll
    h(QueueObserved({"main": "9"}, progress={"main": PendingJob(T0 + 2.5, T0 + 40)}), at=T0 + 60)
    assert h.src.pending_progress == PendingJob(T0 + 2.5, T0 + 40)
    h(QueueObserved({"main": None}), at=T0 + 90)
    assert h.src.pending_progress is None


# --- bull.py against a real worker ---------------------------------------------------------------


async def test_pending_progress_reads_creation_and_the_workers_take(
    queue: BullQueue, redis_url: str
) -> None:
    before = time.time()
    result = await queue.request_refresh(
        "default", {"reason": "manual"}, JobOptions(), cooldown_s=0, default_source=True
    )
    assert result.state == "enqueued" and result.job_id
    waiting = await queue.pending_progress(result.job_id)
    assert waiting is not None and waiting.taken_at is None
    assert before - 1 <= waiting.created_at <= time.time() + 1

    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "HOLD": "1"})
    try:
        worker.wait("processing")
        taken = await queue.pending_progress(result.job_id)
        assert taken is not None and taken.created_at == waiting.created_at
        processed = redis.Redis.from_url(redis_url).hget(BASE + result.job_id, "processedOn")
        assert taken.taken_at == int(processed or 0) / 1000
        assert taken.taken_at >= taken.created_at
    finally:
        worker.proc.kill()  # a held job never ends
        worker.proc.wait()
    assert await queue.pending_progress("no-such-job") is None


async def test_an_unreadable_creation_time_is_no_progress(queue: BullQueue, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    for i, stamp in enumerate([b"soon", b"-5", b"1e400", b"nan"]):
        r.hset(f"{BASE}odd{i}", mapping={"timestamp": stamp, "data": "{}"})
        assert await queue.pending_progress(f"odd{i}") is None


# --- through the daemon: the gauges -------------------------------------------------------------


def test_the_gauges_say_since_when_a_job_waits_and_when_a_worker_took_it(
    redis_url: str, jar: Path, tmp_path: Path
) -> None:
    env = daemon_env(redis_url, jar)
    env.pop("YT_DLP_COOKIES_FILE")
    cfg = source_config(tmp_path / "sources.toml", jar, upload_timeout="5m")
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    worker: NodeProcess | None = None
    try:
        assert d.metric(SINCE, source="default") is None  # nothing pending: no sample
        assert d.metric(ACTIVE, source="default") is None
        assert d.metric(TIMEOUT, source="default") == 300
        answer = d.post("/api/cookies/trigger-refresh", json={"reason": "test"}).json()
        job = redis.Redis.from_url(redis_url).hget(BASE + answer["job_id"], "timestamp")
        created = int(job or 0) / 1000
        wait_for(lambda: d.metric(SINCE, source="default") == created, what="pending since")
        assert d.metric(ACTIVE, source="default") == 0
        assert d.metric(ACTIVE_SINCE, source="default") is None

        worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "HOLD": "1"})
        worker.wait("processing")
        wait_for(lambda: d.metric(ACTIVE, source="default") == 1, what="taken")
        taken = d.metric(ACTIVE_SINCE, source="default")
        assert taken is not None and created <= taken <= time.time() + 1
        assert d.metric(SINCE, source="default") == created
    finally:
        if worker is not None:
            worker.proc.kill()
            worker.proc.wait()
        d.stop()


def test_the_gauges_go_when_the_job_finishes(redis_url: str, jar: Path) -> None:
    d = Daemon(env=daemon_env(redis_url, jar)).start()
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        d.post("/api/cookies/trigger-refresh", json={"reason": "manual_trigger"})
        worker.wait("completed")
        wait_for(lambda: d.metric("cookie_supervisor_refresh_pending", source="default") == 0)
        text = d.metrics()
        assert f'{SINCE}{{source="default"}}' not in text
        assert f'{ACTIVE}{{source="default"}}' not in text
    finally:
        worker.stop()
        d.stop()


def test_no_pending_gauges_without_redis() -> None:
    h = Harness()
    h.file(jar())
    h(QueueObserved({"main": "3"}, progress={"main": PendingJob(T0)}))
    h(core.RedisDown("gone"))
    from cookie_supervisor.metrics import render_state

    out: list[str] = []
    render_state(h.state, T0, QUEUE, out)
    text = "".join(out)
    assert f'{SINCE}{{source="main"}}' not in text and f'{TIMEOUT}{{source="main"}}' in text
