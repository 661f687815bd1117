"""bull.py against a real redis-server and a real bull@4 worker (tests/interop)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from cookie_supervisor.bull import BullQueue, JobOptions
from tests.support import ROOT, Daemon, NodeProcess, cookie_jar, node_queue, write_atomic

QUEUE = "cookie-refresh"
BASE = f"bull:{QUEUE}:"
DATA = {
    "reason": "bot_detection",
    "source": "default",
    "cookies_file": "/srv/c.txt",
    "requested_at": "2026-11-25T05:00:00.000Z",
    "host": "test",
    "note": "ünïcode ✓",
}


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[BullQueue]:
    client = Redis.from_url(redis_url)
    q = BullQueue(client, QUEUE)
    yield q
    await q.aclose()
    await client.aclose()


@pytest.fixture
def worker(redis_url: str) -> Iterator[NodeProcess]:
    w = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    w.wait("ready")
    yield w
    w.proc.kill()  # held jobs never end; nothing to wait for
    w.proc.wait()


def sync(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


async def test_worker_receives_jobs_exactly_as_sent(queue: BullQueue, redis_url: str) -> None:
    result = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    assert result.state == "enqueued" and result.job_id == "1"
    seen = node_queue(redis_url, QUEUE, "job", "1")
    assert seen["state"] == "waiting" and seen["name"] == "__default__" and seen["data"] == DATA
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        [job] = worker.wait("processing")
        assert job["name"] == "__default__" and job["data"] == DATA and job["attemptsMade"] == 0
        opts = job["opts"]
        assert opts["attempts"] == 3 and opts["backoff"] == {"type": "exponential", "delay": 60000}
        assert opts["removeOnComplete"] == 100 and opts["removeOnFail"] == 100
        assert opts["delay"] == 0 and opts["timestamp"] == seen["timestamp"]
        worker.wait("completed")
        [done] = await wait_async(lambda: queue.finished_since(0))
        assert (done.job_id, done.outcome, done.source, done.reason) == (
            "1",
            "completed",
            "default",
            "bot_detection",
        )
        assert done.attempts_made == 0 and done.created_at == seen["timestamp"] / 1000
    finally:
        worker.stop()


async def test_retries_follow_the_exponential_backoff(queue: BullQueue, redis_url: str) -> None:
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "FAIL_ATTEMPTS": "99"})
    try:
        worker.wait("ready")
        opts = JobOptions(attempts=3, backoff_ms=150)
        first = await queue.request_refresh("default", DATA, opts, cooldown_s=600)
        attempts = worker.wait("processing", 2)
        # between attempts the job waits in `delayed`: still pending, so a trigger coalesces
        again = await queue.request_refresh("default", DATA, opts, cooldown_s=600)
        assert (again.state, again.job_id) == ("coalesced", first.job_id)
        attempts = worker.wait("processing", 3)
        worker.wait("failed", 3)
        assert [a["attemptsMade"] for a in attempts] == [0, 1, 2]
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 150 and gaps[1] >= 450, gaps  # 1x then 3x the delay
        [failed] = await wait_async(lambda: queue.finished_since(0))
        assert failed.outcome == "failed" and failed.attempts_made == 3
        assert failed.failed_reason == "browser export failed on purpose"
        assert await queue.pending_job("default") is None
    finally:
        worker.stop()


async def test_a_job_failing_once_then_succeeding_completes(
    queue: BullQueue, redis_url: str
) -> None:
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "FAIL_ATTEMPTS": "1"})
    try:
        worker.wait("ready")
        await queue.request_refresh("default", DATA, JobOptions(backoff_ms=50), cooldown_s=0)
        worker.wait("completed")
        [done] = await wait_async(lambda: queue.finished_since(0))
        assert done.outcome == "completed" and done.attempts_made == 1
    finally:
        worker.stop()


async def test_counts_equal_node_in_every_state(
    queue: BullQueue, redis_url: str, worker: NodeProcess, tmp_path: Any
) -> None:
    jar = tmp_path / "c.txt"
    write_atomic(jar, cookie_jar())  # healthy: the daemon itself must not add a job here
    daemon = Daemon(
        env={
            "REDIS_URL": redis_url,
            "YT_DLP_COOKIES_FILE": str(jar),
            "COOKIE_SUPERVISOR_VALIDATION_URLS": "",
        }
    ).start()
    try:
        await queue.add({"fail": True})
        worker.wait("failed")
        await queue.add({"ok": True})
        worker.wait("completed")
        await queue.add({"hold": True})  # the worker (concurrency 1) holds it: active
        worker.wait("processing", 3)
        await queue.add({"n": 1})
        await queue.add({"n": 2})
        await queue.add({"later": True}, delay_ms=3_600_000)
        await queue.add({"p": 1}, priority=1)
        expected = {
            "waiting": 3,
            "active": 1,
            "completed": 1,
            "failed": 1,
            "delayed": 1,
            "paused": 0,
        }
        await assert_counts(queue, redis_url, daemon, expected)

        assert node_queue(redis_url, QUEUE, "pause") == {"paused": True}
        jid, _ = await queue.add({"while": "paused"})
        assert sync(redis_url).lrange(BASE + "paused", 0, 0) == [jid.encode()]
        expected |= {"waiting": 0, "paused": 4}
        await assert_counts(queue, redis_url, daemon, expected)

        assert node_queue(redis_url, QUEUE, "resume") == {"paused": False}
        expected |= {"waiting": 4, "paused": 0}
        await assert_counts(queue, redis_url, daemon, expected)
    finally:
        daemon.stop()
    # a fresh worker takes the resumed jobs, the prioritized one first
    second = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        done = second.wait("completed", 4)
        assert second.of("processing")[0]["data"] == {"p": 1}
        assert {d["id"] for d in done} >= {jid}
    finally:
        second.stop()


async def assert_counts(
    queue: BullQueue, redis_url: str, daemon: Daemon, expected: dict[str, int]
) -> None:
    ours = (await queue.counts()).as_dict()
    node = node_queue(redis_url, QUEUE, "counts")
    api = daemon.get("/api/cookies/queue-status").json()["status"]
    assert ours == node == expected
    assert {k: api[k] for k in expected} == expected and api["total"] == sum(expected.values())


async def test_500_concurrent_triggers_make_one_job(queue: BullQueue, redis_url: str) -> None:
    results = await asyncio.gather(
        *[queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600) for _ in range(500)]
    )
    states = [r.state for r in results]
    assert states.count("enqueued") == 1 and states.count("coalesced") == 499
    assert len({r.job_id for r in results}) == 1
    assert (await queue.counts()).waiting == 1


def test_two_processes_racing_make_one_job(redis_url: str) -> None:
    script = (
        "import asyncio, sys, json\n"
        "from redis.asyncio import Redis\n"
        "from cookie_supervisor.bull import BullQueue, JobOptions\n"
        "async def main():\n"
        "    q = BullQueue(Redis.from_url(sys.argv[1]), 'cookie-refresh')\n"
        "    sys.stdin.readline()\n"  # a shared start line: both go at once
        "    rs = await asyncio.gather(*[q.request_refresh('default', {'source': 'default'},"
        " JobOptions(), cooldown_s=600) for _ in range(300)])\n"
        "    print(json.dumps([r.state for r in rs]))\n"
        "asyncio.run(main())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, redis_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    states = [s for p in procs for s in json.loads(p.communicate(timeout=30)[0])]
    assert states.count("enqueued") == 1 and states.count("coalesced") == 599
    r = sync(redis_url)
    assert r.llen(BASE + "wait") == 1 and r.get(BASE + "id") == b"1"


async def test_cooldown_after_a_job_ends_and_force(
    queue: BullQueue, redis_url: str, worker: NodeProcess
) -> None:
    first = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    worker.wait("completed")
    cooled = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    assert cooled.state == "cooldown" and cooled.job_id == first.job_id
    assert cooled.retry_after is not None and 590 < cooled.retry_after <= 600
    forced = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600, force=True)
    assert forced.state == "enqueued" and forced.job_id != first.job_id
    # force passes the cooldown, never a pending job (the worker may already hold it: active)
    again = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600, force=True)
    assert again.state in ("coalesced", "cooldown") and again.job_id == forced.job_id
    other = await queue.request_refresh("backup", DATA, JobOptions(), cooldown_s=600)
    assert other.state == "enqueued"  # cooldowns and pending jobs are per source


async def test_add_matches_bull_details(queue: BullQueue, redis_url: str) -> None:
    r = sync(redis_url)
    assert await queue.add({"a": 1}, job_id="refresh-user-42") == ("refresh-user-42", True)
    assert await queue.add({"a": 2}, job_id="refresh-user-42") == ("refresh-user-42", False)
    assert json.loads(r.hget(BASE + "refresh-user-42", "data") or b"") == {"a": 1}
    assert r.get(BASE + "id") == b"2"  # the counter moves even for custom ids and duplicates
    with pytest.raises(ValueError):
        await queue.add({}, job_id="42")  # an auto id would overwrite it one day
    job_id, _ = await queue.add({"d": 1}, delay_ms=400)
    [(member, score)] = r.zrange(BASE + "delayed", 0, -1, withscores=True)
    ts = int(r.hget(BASE + job_id, "timestamp") or 0)
    assert member == job_id.encode() and score == (ts + 400) * 4096 + (int(job_id) & 0xFFF)
    assert node_queue(redis_url, QUEUE, "job", job_id)["state"] == "delayed"
    for data, prio in (({"plain": 1}, 0), ({"p": 3}, 3), ({"p": 1}, 1), ({"plain": 2}, 0)):
        await queue.add(data, priority=prio)
    await queue.add({"lifo": True}, lifo=True)
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        done = worker.wait("processing", 7)
        order = [json.dumps(e["data"], sort_keys=True) for e in done]
        # lifo first (right end), then priorities lowest first, then FIFO, the delayed job last
        assert order[:6] == [
            '{"lifo": true}',
            '{"p": 1}',
            '{"p": 3}',
            '{"a": 1}',
            '{"plain": 1}',
            '{"plain": 2}',
        ]
        delayed = done[6]
        assert delayed["data"] == {"d": 1} and delayed["at"] >= ts + 400
        assert delayed["at"] - (ts + 400) < 1000  # the delayed publish woke the worker
    finally:
        worker.stop()


async def test_claim_is_exclusive_until_its_ttl(queue: BullQueue) -> None:
    assert await queue.claim("rotation:default:1", 0.3) is True
    assert await queue.claim("rotation:default:1", 0.3) is False
    assert await queue.claim("rotation:default:2", 0.3) is True
    assert await wait_async(lambda: queue.claim("rotation:default:1", 0.3), timeout=3)


async def test_foreign_and_malformed_finished_jobs_never_crash(
    queue: BullQueue, redis_url: str
) -> None:
    r = sync(redis_url)
    r.hset(BASE + "7", mapping={"data": "not json", "finishedOn": "1000", "opts": "{}"})
    r.hset(BASE + "8", mapping={"data": "[1, 2]", "finishedOn": "2000"})
    r.zadd(BASE + "completed", {"7": 1000, "8": 2000, "9": 3000})  # 9: trimmed hash
    jobs = await queue.finished_since(0)
    assert [(j.job_id, j.source) for j in jobs] == [("7", None), ("8", None)]


async def test_script_survives_a_script_flush(queue: BullQueue, redis_url: str) -> None:
    await queue.add({"n": 1})
    sync(redis_url).script_flush()
    assert (await queue.add({"n": 2}))[1] is True
    assert (await queue.counts()).waiting == 2


async def wait_async(make: Any, timeout: float = 10) -> Any:
    """wait_for for coroutines: poll `make()` until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await make()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s")
        await asyncio.sleep(0.02)
