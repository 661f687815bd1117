"""bull.py against a real redis-server and a real bull@4 worker (tests/interop)."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import pytest
import redis
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from cookie_supervisor.bull import BackoffState, BullQueue, JobOptions, RefreshResult
from cookie_supervisor.redisconn import connect, describe_redis_error, masked_url
from tests.bullkit import Producer
from tests.support import (
    ROOT,
    Daemon,
    NodeProcess,
    RedisServer,
    cookie_jar,
    free_port,
    node_queue,
    wait_for,
    write_atomic,
)

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
def kit(queue: BullQueue) -> Producer:
    return Producer(queue)


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
        assert await queue.job_state("1", source="default") == "completed"
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
        assert first.job_id and await queue.job_state(first.job_id) == "pending"
        attempts = worker.wait("processing", 3)
        worker.wait("failed", 3)
        assert [a["attemptsMade"] for a in attempts] == [0, 1, 2]
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(attempts)]
        assert gaps[0] >= 150 and gaps[1] >= 450, gaps  # 1x then 3x the delay
        [failed] = await wait_async(lambda: queue.finished_since(0))
        assert failed.outcome == "failed" and failed.attempts_made == 3
        assert failed.failed_reason == "browser export failed on purpose"
        assert await queue.pending_job("default") is None
        assert await queue.job_state(first.job_id) == "failed"
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
    queue: BullQueue, kit: Producer, redis_url: str, worker: NodeProcess, tmp_path: Any
) -> None:
    jar = tmp_path / "c.txt"
    write_atomic(jar, cookie_jar())  # healthy: the daemon itself must not add a job here
    daemon = Daemon(
        env={
            "REDIS_URL": redis_url,
            "YT_DLP_COOKIES_FILE": str(jar),
            "COOKIE_SUPERVISOR_VALIDATION_URLS": "none",
        }
    ).start()
    try:
        await kit.add({"fail": True})
        worker.wait("failed")
        await kit.add({"ok": True})
        worker.wait("completed")
        await kit.add({"hold": True})  # the worker (concurrency 1) holds it: active
        worker.wait("processing", 3)
        await kit.add({"n": 1})
        await kit.add({"n": 2})
        await kit.add({"later": True}, delay_ms=3_600_000)
        await kit.add({"p": 1}, priority=1)
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
        jid, _ = await kit.add({"while": "paused"})
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
    worker.proc.kill()  # from here on jobs stay pending
    worker.proc.wait()
    forced = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600, force=True)
    assert forced.state == "enqueued" and forced.job_id != first.job_id
    # force passes the cooldown, never a pending job
    again = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600, force=True)
    assert (again.state, again.job_id) == ("coalesced", forced.job_id)
    other = await queue.request_refresh("backup", DATA, JobOptions(), cooldown_s=600)
    assert other.state == "enqueued"  # cooldowns and pending jobs are per source
    stored = json.loads(sync(redis_url).hget(BASE + str(other.job_id), "data") or b"")
    assert stored["source"] == "backup"  # the job names the source it was requested for
    assert await queue.pending_job("backup") == other.job_id


async def test_add_matches_bull_details(queue: BullQueue, kit: Producer, redis_url: str) -> None:
    r = sync(redis_url)
    assert await kit.add({"a": 1}, job_id="refresh-user-42") == ("refresh-user-42", True)
    assert await kit.add({"a": 2}, job_id="refresh-user-42") == ("refresh-user-42", False)
    assert json.loads(r.hget(BASE + "refresh-user-42", "data") or b"") == {"a": 1}
    assert r.get(BASE + "id") == b"2"  # the counter moves even for custom ids and duplicates
    with pytest.raises(ValueError):
        await kit.add({}, job_id="42")  # an auto id would overwrite it one day
    published = r.pubsub(ignore_subscribe_messages=True)
    published.subscribe(BASE + "delayed")
    job_id, _ = await kit.add({"d": 1}, delay_ms=400)
    [(member, score)] = r.zrange(BASE + "delayed", 0, -1, withscores=True)
    ts = int(r.hget(BASE + job_id, "timestamp") or 0)
    assert member == job_id.encode() and score == (ts + 400) * 4096 + (int(job_id) & 0xFFF)
    # the due time goes out on `delayed`, which wakes sleeping workers (docs/bull.md §3)
    message = wait_for(lambda: published.get_message(timeout=0.1), what="the delayed publish")
    assert message["data"] == str(ts + 400).encode()
    published.close()
    assert node_queue(redis_url, QUEUE, "job", job_id)["state"] == "delayed"
    for data, prio in (({"plain": 1}, 0), ({"p": 3}, 3), ({"p": 1}, 1), ({"plain": 2}, 0)):
        await kit.add(data, priority=prio)
    await kit.add({"lifo": True}, lifo=True)
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
    finally:
        worker.stop()


async def test_a_lease_is_its_owners_until_it_runs_out_or_is_settled(queue: BullQueue) -> None:
    assert await queue.claim("hook:evt_1", "a", 0.3) is True
    assert await queue.claim("hook:evt_1", "a", 0.3) is True  # renewed by its owner
    other = await queue.claim("hook:evt_1", "b", 0.3)
    assert isinstance(other, float) and 0 < other <= 0.3  # how long to wait for it
    assert await queue.claim("hook:evt_2", "b", 0.3) is True
    # the owner died: its lease runs out and the next daemon that asks takes it
    assert await wait_async(lambda: _is_true(queue.claim("hook:evt_1", "b", 0.3)), timeout=3)
    await queue.settle("hook:evt_1", "b", 60)
    assert await queue.claim("hook:evt_1", "a", 0.3) is False  # delivered: nobody sends it again
    assert await queue.claim("hook:evt_1", "b", 0.3) is False


async def _is_true(claim: Awaitable[bool | float]) -> bool:
    return await claim is True


async def test_epoch_is_shared_and_new_after_a_flush(queue: BullQueue, redis_url: str) -> None:
    first = await queue.epoch("e1")
    assert first == "e1" and await queue.epoch("e2") == "e1"  # another daemon: the same one
    sync(redis_url).flushall()
    assert await queue.epoch("e3") == "e3"


async def test_an_incident_is_joined_until_closed(queue: BullQueue) -> None:
    assert await queue.open_incident("default", "i1", 60) == "i1"
    assert await queue.open_incident("default", "i2", 60) == "i1"  # a second daemon joins
    await queue.close_incident("default", "i2", 60)  # not the open one: nothing happens
    assert await queue.open_incident("default", "i3", 60) == "i1"
    await queue.close_incident("default", "i1", 60)
    assert await queue.open_incident("default", "i4", 60) == "i4"  # the next incident


async def test_foreign_and_malformed_finished_jobs_never_crash(
    queue: BullQueue, redis_url: str
) -> None:
    r = sync(redis_url)
    r.hset(BASE + "7", mapping={"data": "not json", "finishedOn": "1000", "opts": "{}"})
    r.hset(BASE + "8", mapping={"data": "[1, 2]", "finishedOn": "2000"})
    r.zadd(BASE + "completed", {"7": 1000, "8": 2000, "9": 3000})  # 9: trimmed hash
    jobs = await queue.finished_since(0)
    assert [(j.job_id, j.source) for j in jobs] == [("7", None), ("8", None)]


async def test_script_survives_a_script_flush(
    queue: BullQueue, kit: Producer, redis_url: str
) -> None:
    await kit.add({"n": 1})
    first = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    sync(redis_url).script_flush()
    assert (await kit.add({"n": 2}))[1] is True
    again = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    assert (again.state, again.job_id) == ("coalesced", first.job_id)
    assert await queue.pending_job("default") == first.job_id
    assert (await queue.counts()).waiting == 3


# --- refresh backoff (docs/bull.md §7) -----------------------------------------------------------


async def allowed(queue: BullQueue, **kw: Any) -> RefreshResult:
    """Ask (automatically) until the request is let through; returns that answer."""

    async def ask() -> RefreshResult | None:
        r = await queue.request_refresh("default", DATA, JobOptions(attempts=1), cooldown_s=0, **kw)
        return r if r.state == "enqueued" else None

    result: RefreshResult = await wait_async(ask)
    return result


async def test_backoff_spaces_automatic_requests_1x_2x_4x_the_base(
    queue: BullQueue, redis_url: str
) -> None:
    base = 0.2
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "FAIL_ATTEMPTS": "99"})
    try:
        worker.wait("ready")
        job = (await allowed(queue)).job_id
        for n, factor in enumerate((1, 2, 4), 1):
            worker.wait("failed", n)  # the extractor failed this refresh
            assert job is not None
            # the backoff begins (Redis's clock) somewhere between `before` and `booked`: each
            # bound below is taken from the side of that span it holds for, however long it is
            before, wall_before = time.monotonic(), time.time()
            state = await queue.record_refresh_outcome("default", job, False, base_s=base, max_s=60)
            booked = time.monotonic()
            assert state.failures == n and state.until is not None
            assert wall_before + factor * base - 0.01 <= state.until
            assert state.until <= time.time() + factor * base + 0.05
            refused = await queue.request_refresh(
                "default", DATA, JobOptions(attempts=1), cooldown_s=0
            )
            asked = time.monotonic()
            assert refused.state == "backoff" and refused.retry_after is not None
            # what is left of it: the whole step less the time gone since it began
            left = refused.retry_after
            assert factor * base - (asked - before) - 0.01 <= left <= factor * base, (n, left)
            job = (await allowed(queue)).job_id
            allowed_at = time.monotonic()
            assert allowed_at - before >= factor * base - 0.01, (n, allowed_at - before)
            assert allowed_at - booked < factor * base + 1, (n, allowed_at - booked)
        worker.wait("failed", 4)
        assert job is not None
        verified = await queue.record_refresh_outcome("default", job, True, base_s=base, max_s=60)
        assert (verified.failures, verified.until) == (0, None)
        again = await queue.request_refresh("default", DATA, JobOptions(attempts=1), cooldown_s=0)
        assert again.state == "enqueued"  # a success resets: no wait at all
    finally:
        worker.stop()


async def test_two_daemons_share_one_pending_job_and_one_backoff(redis_url: str) -> None:
    clients = [Redis.from_url(redis_url) for _ in range(2)]
    one, two = (BullQueue(c, QUEUE) for c in clients)
    opts = JobOptions(attempts=1)
    first = await one.request_refresh("default", DATA, opts, cooldown_s=0)
    second = await two.request_refresh("default", DATA, opts, cooldown_s=0)
    assert first.state == "enqueued" and (second.state, second.job_id) == (
        "coalesced",
        first.job_id,
    )
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "FAIL_ATTEMPTS": "99"})
    try:
        worker.wait("failed")
        # both daemons see the job fail and report it: it counts once
        [j1] = await wait_async(lambda: one.finished_since(0))
        [j2] = await two.finished_since(0)
        assert j1.job_id == j2.job_id == first.job_id
        states = await asyncio.gather(
            *[
                q.record_refresh_outcome("default", j1.job_id, False, base_s=60, max_s=600)
                for q in (one, two, one)
            ]
        )
        assert {s.failures for s in states} == {1}
        assert await one.backoff_state("default") == await two.backoff_state("default")
        refused = await two.request_refresh("default", DATA, opts, cooldown_s=0)
        assert refused.state == "backoff" and refused.retry_after is not None
        assert 55 < refused.retry_after <= 60
        forced = await two.request_refresh("default", DATA, opts, cooldown_s=0, force=True)
        assert forced.state == "enqueued"  # a person may; and says so in the answer
        worker.wait("failed", 2)
        await one.reset_backoff("default")  # a validation passed
        assert await two.backoff_state("default") == (await one.backoff_state("default"))
        assert (await two.backoff_state("default")).failures == 0
        assert (await one.request_refresh("default", DATA, opts, cooldown_s=0)).state == "enqueued"
    finally:
        worker.stop()
        for c in clients:
            await c.aclose()


async def test_outcomes_count_once_per_job_capped_and_reset(queue: BullQueue) -> None:
    def record(job: str, ok: bool) -> Any:
        return queue.record_refresh_outcome("default", job, ok, base_s=10, max_s=25)

    start = time.time()
    assert (await queue.backoff_state("default")).failures == 0
    first = await record("7", False)
    assert first.failures == 1 and first.until is not None
    assert 9 < first.until - start <= 10.5
    assert await record("7", False) == first  # the same job again: nothing changes
    assert (await record("8", False)).failures == 2
    third = await record("9", False)
    assert third.failures == 3 and third.until is not None
    assert 24 < third.until - start <= 25.5  # 40 s capped at 25
    assert (await queue.backoff_state("default")).until == third.until
    assert (await queue.backoff_state("backup")).failures == 0  # per source
    await queue.reset_backoff("default")
    assert await queue.backoff_state("default") == BackoffState(0, None)
    assert (await record("10", False)).failures == 1
    assert (await record("11", True)).failures == 0
    assert (await record("10", False)).failures == 0  # a late duplicate of a counted outcome


async def test_cooldown_and_backoff_answer_with_the_longer_wait(
    queue: BullQueue, redis_url: str
) -> None:
    def ask(force: bool = False) -> Any:
        return queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600, force=force)

    await queue.record_refresh_outcome("default", "x", False, base_s=30, max_s=3600)
    held = await ask()
    assert held.state == "backoff" and 25 < (held.retry_after or 0) <= 30
    forced = await ask(force=True)
    assert forced.state == "enqueued" and forced.job_id
    coalesced = await ask()  # a pending job coalesces whatever the backoff says
    assert (coalesced.state, coalesced.job_id) == ("coalesced", forced.job_id)
    # the job ends, the way a worker's completion moves it (docs/bull.md §4)
    r, now = sync(redis_url), int(time.time() * 1000)
    r.lrem(BASE + "wait", 0, forced.job_id)
    r.hset(BASE + forced.job_id, "finishedOn", now)
    r.zadd(BASE + "completed", {forced.job_id: now})
    cooled = await ask()  # 600 s of cooldown outlast 30 s of backoff
    assert cooled.state == "cooldown" and 590 < (cooled.retry_after or 0) <= 600
    state = await queue.record_refresh_outcome(
        "default", forced.job_id, False, base_s=3000, max_s=3600
    )
    assert state.failures == 2
    backed = await ask()  # 3600 s of backoff (6000 capped) outlast the cooldown
    assert backed.state == "backoff" and 3590 < (backed.retry_after or 0) <= 3600


# --- jobs of other producers, vanished jobs (docs/bull.md §7) -----------------------------------


async def test_a_legacy_job_without_source_is_pending_for_the_default_source(
    queue: BullQueue, redis_url: str
) -> None:
    legacy = {"reason": "bot_detection", "cookies_file": "/srv/c.txt"}  # the backend's own add
    legacy_id = node_queue(redis_url, QUEUE, "add", json.dumps(legacy))["id"]
    assert await queue.pending_job("default") is None
    assert await queue.pending_job("default", default_source=True) == legacy_id
    for force in (False, True):
        r = await queue.request_refresh(
            "default", DATA, JobOptions(), cooldown_s=600, default_source=True, force=force
        )
        assert (r.state, r.job_id) == ("coalesced", legacy_id)
    other = await queue.request_refresh(
        "backup", DATA | {"source": "backup"}, JobOptions(), cooldown_s=600
    )
    assert other.state == "enqueued"  # not the default source: the legacy job is not its own
    # our backup job has a source: it never counts for the default source
    node_queue(redis_url, QUEUE, "pause")  # (paused jobs are pending too)
    sync(redis_url).lrem(BASE + "paused", 0, legacy_id)
    assert await queue.pending_job("default", default_source=True) is None
    assert (await queue.counts()).paused == 1


async def test_an_obliterated_queue_leaves_no_false_pending_job(
    queue: BullQueue, redis_url: str
) -> None:
    first = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    assert first.job_id == "1" and await queue.job_state("1", source="default") == "pending"
    assert node_queue(redis_url, QUEUE, "obliterate") == {"obliterated": True}
    assert await queue.job_state("1") == "missing"  # vanished, not finished
    assert await queue.pending_job("default") is None
    backup = await queue.request_refresh(
        "backup", DATA | {"source": "backup"}, JobOptions(), cooldown_s=600
    )
    assert (backup.state, backup.job_id) == ("enqueued", "1")  # ids start again
    assert await queue.job_state("1", source="default") == "missing"  # that id is backup's now
    assert await queue.job_state("1", source="backup") == "pending"
    assert await queue.pending_job("default") is None
    again = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
    # not coalesced into backup's job, and no cooldown: the vanished job never ran
    assert (again.state, again.job_id) == ("enqueued", "2")


async def test_finished_since_reads_the_newest_jobs(
    queue: BullQueue, kit: Producer, redis_url: str
) -> None:
    for start in range(0, 260, 50):  # in batches: redis-py's pool holds 100 connections at most
        batch = range(start, min(260, start + 50))
        await asyncio.gather(*[kit.add({"n": i, "fail": i % 5 == 0}) for i in batch])
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url})
    try:
        wait_for(lambda: len(worker.of("completed")) + len(worker.of("failed")) >= 260, timeout=30)
    finally:
        worker.stop()
    r = sync(redis_url)
    scores = sorted(
        s for z in ("completed", "failed") for _, s in r.zrange(BASE + z, 0, -1, withscores=True)
    )
    assert len(scores) == 260
    jobs = await queue.finished_since(0)
    assert len(jobs) == 200
    at = [j.finished_at * 1000 for j in jobs]
    assert at == sorted(at) and at[-1] == scores[-1] and at[0] >= scores[-200]
    assert {j.outcome for j in jobs} == {"completed", "failed"}
    latest = await queue.finished_since(int(scores[-3]), limit=200)
    assert [j.finished_at * 1000 for j in latest] == [s for s in scores if s >= scores[-3]]


# --- Redis restarts and errors -------------------------------------------------------------------


def daemon_client(url: str, **kw: Any) -> Redis:
    """A client set up like the daemon's (redisconn.connect): no retries inside redis-py."""
    return Redis.from_url(url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0), **kw)


async def test_a_redis_restart_costs_no_error(own_redis: RedisServer) -> None:
    client = connect(own_redis.url)  # the daemon's own client: a bounded pool, no retries inside
    queue = BullQueue(client, QUEUE)
    try:
        first = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
        await asyncio.gather(*[queue.counts() for _ in range(4)])  # several pooled connections
        own_redis.stop()
        own_redis.start()  # empty: no persistence, no scripts loaded
        # every pooled connection is stale now; each call still succeeds, first time
        assert (await queue.counts()).waiting == 0
        assert await queue.pending_job("default") is None
        assert first.job_id and await queue.job_state(first.job_id) == "missing"
        own_redis.stop()
        own_redis.start()
        again = await queue.request_refresh("default", DATA, JobOptions(), cooldown_s=600)
        assert again.state == "enqueued"
        own_redis.stop()
        own_redis.start()
        assert await queue.claim("rotation:default:1", "owner", 60) is True
        own_redis.stop()
        with pytest.raises(RedisError) as down:  # a real outage still raises
            await queue.counts()
        assert describe_redis_error(down.value) == "connection refused (ECONNREFUSED)"
    finally:
        await client.aclose()


async def test_redis_errors_name_the_condition(
    own_redis: RedisServer, redis_server: RedisServer
) -> None:
    secret = "hunter2-not-for-logs"
    admin = redis.Redis.from_url(own_redis.url)

    async def failure(url: str, call: Any = None, **kw: Any) -> str:
        client = daemon_client(url, **kw)
        try:
            with pytest.raises(RedisError) as caught:
                await (call(client) if call else BullQueue(client, QUEUE).counts())
        finally:
            await client.aclose()
        text = describe_redis_error(caught.value)
        assert secret not in text
        return text

    refused = f"redis://:{secret}@127.0.0.1:{free_port()}"
    assert await failure(refused) == "connection refused (ECONNREFUSED)"
    noscript = await failure(own_redis.url, lambda c: c.evalsha("0" * 40, 0))
    assert noscript == "script not loaded (NOSCRIPT)"
    slow = await failure(own_redis.url, lambda c: c.blpop(["nothing"], 1), socket_timeout=0.1)
    assert slow == "timed out waiting for Redis"

    admin.config_set("maxmemory", 1)
    try:
        oom = await failure(
            own_redis.url,
            lambda c: BullQueue(c, QUEUE).request_refresh("d", DATA, JobOptions(), cooldown_s=1),
        )
        assert oom == "out of memory: Redis reached maxmemory and refuses writes (OOM)"
    finally:
        admin.config_set("maxmemory", 0)

    admin.replicaof("127.0.0.1", redis_server.port)
    try:
        read_only = await failure(
            own_redis.url, lambda c: BullQueue(c, QUEUE).reset_backoff("default")
        )
        assert read_only == "read-only replica: writes need the primary (READONLY)"
    finally:
        admin.replicaof("NO", "ONE")

    admin.config_set("requirepass", "the-right-password")
    wrong = own_redis.url.replace("redis://", f"redis://:{secret}@")
    assert await failure(wrong) == "authentication failed (wrong or missing password)"
    assert await failure(own_redis.url) == "authentication failed (wrong or missing password)"


def test_a_configured_url_is_logged_without_its_password() -> None:
    secret = "hunter2-not-for-logs"
    for url, shown in [
        (f"redis://:{secret}@10.0.0.5:6379/2", "redis://:***@10.0.0.5:6379/2"),
        (f"rediss://cache:{secret}@redis.internal/0", "rediss://cache:***@redis.internal/0"),
        ("redis://10.0.0.5:6379", "redis://10.0.0.5:6379"),
        ("unix:///run/redis.sock?db=1", "unix:///run/redis.sock?db=1"),
    ]:
        assert masked_url(url) == shown


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


# --- issue 16 D7: a worker whose clock is behind -------------------------------------------------


async def test_d7_cooldown_runs_from_when_redis_saw_the_end_not_the_workers_finishedon(
    queue: BullQueue, redis_url: str
) -> None:
    """A real bull worker whose clock is 5 minutes behind finishes the job: its finishedOn is
    5 minutes old when it is written. The cooldown still runs from the end as Redis saw it."""
    opts = JobOptions(attempts=1, backoff_ms=0, keep=10)
    w = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "CLOCK_SKEW_MS": "-300000"})
    try:
        w.wait("ready")
        first = await queue.request_refresh("default", DATA, opts, cooldown_s=60)
        assert first.state == "enqueued"
        [done] = w.wait("completed")
        assert done["at"] < time.time() * 1000 - 290_000  # the worker's clock, 5 minutes behind
        again = await queue.request_refresh("default", DATA, opts, cooldown_s=60)
        assert again.state == "cooldown" and again.retry_after is not None
        assert 55 < again.retry_after <= 60
    finally:
        w.stop()


async def test_d7_recent_finished_reads_by_rank_and_skips_judged(
    queue: BullQueue, kit: Producer, redis_url: str
) -> None:
    r = sync(redis_url)
    now_ms = int(time.time() * 1000)
    for job_id, finished in (("1", now_ms), ("2", now_ms - 300_000)):  # "2" by a skewed host
        r.hset(
            BASE + job_id,
            mapping={
                "data": json.dumps(DATA),
                "finishedOn": finished,
                "timestamp": now_ms - 1000,
                "returnvalue": "{}",
            },
        )
        r.zadd(BASE + "completed", {job_id: finished})
    jobs, window = await queue.recent_finished()
    assert {j.job_id for j in jobs} == {"1", "2"}
    assert window == {f"1@{now_ms}", f"2@{now_ms - 300_000}"}
    jobs, _ = await queue.recent_finished(judged={f"1@{now_ms}"})
    assert [j.job_id for j in jobs] == ["2"]  # the older finishedOn is no reason to skip it
