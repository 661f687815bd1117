"""The simulator's Redis model (tests/sim/redis_model.py) equals bull.py's Lua on a real redis-server.

Seeded random sequences of what daemons and bull workers do to one queue (refresh requests with
and without force, outcomes, backoff resets, pending and job-state reads, workers taking and
finishing jobs, a foreign producer's job, FLUSHALL, time passing) run against both; after every
operation the answers, the marker hash, the outcomes and every job's state must agree.

Time passing is done without sleeping: every time stored in Redis (job timestamps, finishedOn,
processedOn, the sets' scores, the marker's times) is moved back by the same amount on both
sides, which is what the passing of that much time means to the scripts. The model's clock is
Redis's own `TIME`, read before each operation; the scripts read it a few milliseconds later, so
times are compared within `SLACK_MS`, and durations are whole seconds while time passes in
steps of n + 0.5 s, keeping every comparison far from a boundary. Real time passes too (a stalled
run takes seconds), so a decision can still meet its boundary between the `TIME` read and the
script's: a call is bracketed by `TIME` before and after, and the model must agree when run at one
end of that bracket (`Pair.settle`), as an expiry must be the model's at either end of a read.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
import redis.asyncio as aioredis

from cookie_supervisor.bull import BullQueue, JobOptions
from tests.bullkit import Producer
from tests.sim.redis_model import Job, Marker, RedisModel

SLACK_MS = 250
SOURCES = ("main", "alt")
BASE = "bull:cookie-refresh:"
OWN = "cookie-supervisor:bull:cookie-refresh:"
OPS = ("request", "outcome", "reset", "take", "finish", "foreign", "age", "flush", "share", "epoch")
OPTS = JobOptions(attempts=1, backoff_ms=1000, keep=100)
T = TypeVar("T")


class Pair:
    """The same queue twice: real (BullQueue on redis-server) and modelled."""

    def __init__(self, r: aioredis.Redis) -> None:
        self.r = r
        self.q = BullQueue(r)
        self.producer = Producer(self.q)
        self.now_ms = 0
        self.m = RedisModel(clock=lambda: self.now_ms / 1000)
        self.ids: list[str] = []
        self.log: list[str] = []

    async def tick(self) -> int:
        """The model's clock set to Redis's TIME, before a call."""
        self.now_ms = await self.after()
        return self.now_ms

    async def after(self) -> int:
        """Redis's TIME once the real call returned: the script ran between tick and this."""
        sec, usec = await self.r.time()
        return int(sec) * 1000 + int(usec) // 1000

    def settle(
        self, t0: int, t1: int, run: Callable[[RedisModel], T], agrees: Callable[[T], bool]
    ) -> T:
        """The model's answer to a call the script answered at some moment of [t0, t1]: run at
        t0, else at t1 (a boundary crossed within the bracket), and kept where it agrees."""
        tried = []
        for at in (t0, t1) if t1 > t0 else (t0,):
            model = copy.deepcopy(self.m)
            self.now_ms = at
            answer = run(model)
            if agrees(answer):
                self.m = model
                return answer
            tried.append(answer)
        raise AssertionError((tried, t1 - t0, self.log))

    # --- operations on both ---------------------------------------------------------------

    async def request(self, source: str, force: bool, default: bool, cooldown: int) -> None:
        t0 = await self.tick()
        real = await self.q.request_refresh(
            source,
            {"reason": "logged_out"},
            OPTS,
            cooldown_s=cooldown,
            force=force,
            default_source=default,
        )
        t1 = await self.after()
        stamp = 0
        if real.state == "enqueued":
            assert real.job_id is not None
            stamp = int(await self.r.hget(BASE + real.job_id, "timestamp") or 0)
        job_id, st, left = self.settle(
            t0,
            t1,
            lambda m: m.request_refresh(
                source,
                {"reason": "logged_out"},
                timestamp=stamp,
                cooldown_ms=cooldown * 1000,
                force=force,
                default_source=default,
                attempts=1,
                backoff_ms=1000,
            ),
            lambda answer: (answer[1], answer[0]) == (real.state, real.job_id),
        )
        if st in ("cooldown", "backoff"):
            assert real.retry_after is not None
            assert abs(real.retry_after * 1000 - left) <= SLACK_MS, self.log
        if st == "enqueued" and job_id not in self.ids:
            self.ids.append(job_id)

    async def outcome(self, source: str, job_id: str, ok: bool, base: int, cap: int) -> None:
        t0 = await self.tick()
        real = await self.q.record_refresh_outcome(source, job_id, ok, base_s=base, max_s=cap)
        _, until = self.settle(
            t0,
            await self.after(),
            lambda m: m.record_outcome(source, job_id, ok, base * 1000, cap * 1000),
            lambda answer: (
                answer[0] == real.failures and (answer[1] is None) == (real.until is None)
            ),
        )
        if until is not None and real.until is not None:
            assert abs(real.until * 1000 - until) <= SLACK_MS, self.log

    async def reset(self, source: str) -> None:
        await self.q.reset_backoff(source)
        self.m.reset_backoff(source)

    async def take(self) -> None:
        await self.tick()
        job_id = await self.r.lmove(BASE + "wait", BASE + "active", "RIGHT", "LEFT")
        job = self.m.take(self.now_ms)
        assert (job.job_id if job else None) == (job_id.decode() if job_id else None), self.log
        if job_id is not None:
            await self.r.hset(BASE + job_id.decode(), "processedOn", self.now_ms)

    async def finish(self, ok: bool, skew_ms: int) -> None:
        if not self.m.active:
            return
        await self.tick()
        job = self.m.jobs[self.m.active[-1]]
        stamp = self.now_ms + skew_ms  # a worker's clock
        key = BASE + job.job_id
        await self.r.lrem(BASE + "active", 0, job.job_id)
        fields: dict[str, Any] = {"finishedOn": stamp, "attemptsMade": 1}
        if ok:
            fields["returnvalue"] = json.dumps({"ok": True})
        else:
            fields["failedReason"] = "login failed"
        await self.r.hset(key, mapping=fields)
        await self.r.zadd(BASE + ("completed" if ok else "failed"), {job.job_id: stamp})
        assert self.m.finish(job, ok, stamp, "login failed")

    async def foreign(self) -> None:
        job_id, _ = await self.producer.add({"url": "https://example.org"})
        stamp = int(await self.r.hget(BASE + job_id, "timestamp") or 0)
        mine = self.m.add_job({"url": "https://example.org"}, stamp, 1, 1000, 100)
        assert job_id == mine, self.log

    async def share(self, source: str, diagnosis: str | None, ttl: int) -> None:
        await self.tick()
        await self.q.share_diagnosis(source, diagnosis, ttl)
        self.m.share_diagnosis(source, diagnosis, ttl)

    async def epoch(self, candidate: str) -> None:
        """Notices.epoch: the queue's epoch, made anew once a flush erased it (N3)."""
        assert await self.q.epoch(candidate) == self.m.epoch(candidate), self.log

    async def flush(self) -> None:
        await self.r.flushall()
        self.m.flush()
        self.ids.clear()

    async def age(self, ms: int) -> None:
        """`ms` pass: every stored time moves back by `ms` on both sides."""
        r = self.r
        for job_id in [k.decode().removeprefix(BASE) for k in await r.keys(BASE + "*")]:
            if not job_id.isdigit():
                continue
            for f in ("timestamp", "finishedOn", "processedOn"):
                if await r.hexists(BASE + job_id, f):
                    await r.hincrby(BASE + job_id, f, -ms)
        for zset in ("completed", "failed"):
            for member, score in await r.zrange(BASE + zset, 0, -1, withscores=True):
                await r.zadd(BASE + zset, {member: score - ms})
        for source in SOURCES:
            marker = OWN + "pending:" + source
            for f in ("created", "ended", "backoff_until"):
                if await r.hexists(marker, f):
                    await r.hincrby(marker, f, -ms)
            outcomes = OWN + "outcomes:" + source
            for member, score in await r.zrange(outcomes, 0, -1, withscores=True):
                await r.zadd(outcomes, {member: score - ms})
        for source in SOURCES:  # a shared diagnosis's expiry comes `ms` nearer
            key = OWN + "diagnosis:" + source
            left = await r.pttl(key)
            if left > 0:
                await (r.pexpire(key, left - ms) if left > ms else r.delete(key))
            found = self.m.extra.get("diagnosis:" + source)
            if found is not None:
                self.m.extra["diagnosis:" + source] = (found[0], found[1] - ms)
        for job in self.m.jobs.values():
            _age_job(job, ms)
        for zset in (self.m.completed, self.m.failed):
            for k in zset:
                zset[k] -= ms
        for mk in self.m.markers.values():
            _age_marker(mk, ms)
        for outcomes_ in self.m.outcomes.values():
            for k in outcomes_:
                outcomes_[k] -= ms

    # --- the comparison -------------------------------------------------------------------

    async def same(self) -> None:
        await self.tick()
        for source in SOURCES:
            for default in (False, True):
                real = await self.q.pending_job(source, default_source=default)
                assert real == self.m.pending_job(source, default_source=default), self.log
            marker = await self.r.hgetall(OWN + "pending:" + source)
            _same_marker(
                {k.decode(): v.decode() for k, v in marker.items()},
                self.m.markers.get(source),
                self.log,
            )
            outcomes = await self.r.zrange(OWN + "outcomes:" + source, 0, -1)
            assert {o.decode() for o in outcomes} == set(self.m.outcomes.get(source, {}))
            t0 = self.now_ms
            shared = await self.q.shared_diagnosis(source)
            self.now_ms = await self.after()  # an expiry within the read: either end's answer
            expected = {self.m.shared_diagnosis(source)}
            self.now_ms = t0
            expected.add(self.m.shared_diagnosis(source))
            assert shared in expected, (source, self.log)
            real_b = await self.q.backoff_state(source)
            failures, _ = self.m.backoff_state(source)
            assert real_b.failures == failures, self.log
        for job_id in [*self.ids, "999"]:
            for source in (None, *SOURCES):
                real_state = await self.q.job_state(job_id, source=source)
                assert real_state == self.m.job_state(job_id, source), (job_id, source, self.log)
        counts = (await self.q.counts()).as_dict()
        assert counts == self.m.counts(), self.log


def _age_job(job: Job, ms: int) -> None:
    job.timestamp -= ms
    if job.finished_on is not None:
        job.finished_on -= ms
    if job.processed_on is not None:
        job.processed_on -= ms


def _age_marker(mk: Marker, ms: int) -> None:
    for f in ("created", "ended", "backoff_until"):
        if getattr(mk, f) is not None:
            setattr(mk, f, getattr(mk, f) - ms)


def _same_marker(real: dict[str, str], model: Marker | None, log: list[str]) -> None:
    mk = model or Marker()
    assert real.get("job") == mk.job, log
    assert (int(real["created"]) if "created" in real else None) == mk.created, log
    assert int(real.get("failures", 0)) == (mk.failures or 0), log
    for f in ("ended", "backoff_until"):
        r, m = real.get(f), getattr(mk, f)
        assert (r is None) == (m is None), (f, real, mk, log)
        if r is not None and m is not None:
            assert abs(int(r) - m) <= SLACK_MS, (f, real, mk, log)


async def _sequence(pair: Pair, rng: random.Random, steps: int) -> None:
    for _ in range(steps):
        op = rng.choices(
            OPS,
            (8, 5, 1, 5, 5, 1, 3, 0.3, 2, 1),
        )[0]
        source = rng.choice(SOURCES)
        pair.log.append(op)
        if op == "request":
            await pair.request(
                source, rng.random() < 0.2, rng.random() < 0.5, rng.choice((0, 1, 5, 30))
            )
        elif op == "outcome":
            job_id = rng.choice([*pair.ids, "999"]) if pair.ids else "999"
            await pair.outcome(
                source, job_id, rng.random() < 0.3, rng.choice((1, 2, 10)), rng.choice((5, 60))
            )
        elif op == "reset":
            await pair.reset(source)
        elif op == "take":
            await pair.take()
        elif op == "finish":
            await pair.finish(rng.random() < 0.6, rng.choice((0, 0, -300_000, 120_000)))
        elif op == "foreign":
            await pair.foreign()
        elif op == "share":
            found = rng.choice((None, "ip_flagged", "account_restricted"))
            await pair.share(source, found, rng.choice((1, 5, 30, 3600)))
        elif op == "epoch":
            await pair.epoch(rng.choice(("e1", "e2")))
        elif op == "age":
            await pair.age(rng.choice((0, 1, 3, 7, 40)) * 1000 + 500)
        else:
            await pair.flush()
        await pair.same()


@pytest.mark.parametrize("seed", range(20))
async def test_the_model_answers_like_the_lua_scripts(redis_url: str, seed: int) -> None:
    r = aioredis.Redis.from_url(redis_url)
    try:
        await _sequence(Pair(r), random.Random(seed), steps=40)
    finally:
        await r.aclose()


async def test_the_comparison_notices_a_different_model(redis_url: str) -> None:
    """The check is not vacuous: a model whose cooldown is off by a second disagrees."""
    r = aioredis.Redis.from_url(redis_url)
    pair = Pair(r)
    try:
        await pair.request("main", False, False, 5)
        await pair.take()
        await pair.finish(True, 0)
        await pair.same()  # the end is noted on both sides
        pair.m.markers["main"].ended = (pair.m.markers["main"].ended or 0) - 1000
        with pytest.raises(AssertionError):
            await pair.request("main", False, False, 5)
    finally:
        await r.aclose()
