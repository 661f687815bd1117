"""bull.py's Lua scripts restated in Python, on a simulated clock.

The simulator needs Redis's clock to be simulated time, which a real redis-server (or fakeredis)
cannot give: `TIME` is the host's. So the brakes are modelled here, function for function, and
tests/test_sim_redis_model.py proves the model equal to the real scripts on a real redis-server
(same answers, same marker and job state) for seeded random operation sequences.

Also modelled: what a bull v4 worker does to a job (take, retry with exponential backoff, finish
with the *worker's* clock as finishedOn, trim to removeOnComplete/removeOnFail), and outages.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OUTCOMES_KEPT = 100
FOREIGN_SCAN = 100


class RedisDownError(Exception):
    """Redis is not answering (killed, restarting)."""


@dataclass(slots=True)
class Job:
    job_id: str
    data: dict[str, Any]
    timestamp: int  # ms, the producer's clock
    attempts: int = 3
    backoff_ms: int = 60_000
    keep: int = 100
    finished_on: int | None = None  # ms, the worker's clock
    returnvalue: str | None = None
    attempts_made: int = 0
    failed_reason: str | None = None
    uid: int = 0  # the world's identity of this job, unique even when Redis reuses ids
    processed_on: int | None = None  # ms, the worker's clock when it took the job

    @property
    def source(self) -> str | bool | None:
        s = self.data.get("source")
        return s if isinstance(s, str) else False


@dataclass(slots=True)
class Marker:
    job: str | None = None
    created: int | None = None
    ended: int | None = None
    failures: int | None = None
    backoff_until: int | None = None


@dataclass(slots=True)
class RedisModel:
    clock: Callable[[], float]  # Redis host's clock, seconds
    up: bool = True
    next_id: int = 0
    jobs: dict[str, Job] = field(default_factory=dict)
    wait: list[str] = field(default_factory=list)  # index 0 = left (LPUSH), workers pop right
    active: list[str] = field(default_factory=list)
    delayed: dict[str, int] = field(default_factory=dict)  # id -> due ms
    completed: dict[str, int] = field(default_factory=dict)  # id -> finishedOn
    failed: dict[str, int] = field(default_factory=dict)
    markers: dict[str, Marker] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys added by newer code (diagnoses...)
    version: int = 0  # bumped on every write: a poll that sees the same version sees nothing new
    uids: int = 0
    flushes: int = 0  # how often Redis lost everything (FLUSHALL, back empty): its lifetimes

    # --- Redis itself ---------------------------------------------------------------------

    def now_ms(self) -> int:
        return math.floor(self.clock() * 1000)

    def check(self) -> None:
        if not self.up:
            raise RedisDownError("connection refused (ECONNREFUSED)")

    def flush(self) -> None:
        """FLUSHALL, or a restart without persistence: everything gone, ids start again."""
        keep_uids = self.uids
        for f in ("jobs", "delayed", "completed", "failed", "markers", "outcomes", "extra"):
            getattr(self, f).clear()
        self.wait.clear()
        self.active.clear()
        self.next_id = 0
        self.uids = keep_uids
        self.flushes += 1
        self.version += 1

    def marker(self, source: str) -> Marker:
        return self.markers.setdefault(source, Marker())

    # --- READ_LUA -------------------------------------------------------------------------

    def is_pending(self, job_id: str) -> bool:
        return job_id in self.delayed or job_id in self.wait or job_id in self.active

    def job_source(self, job_id: str) -> str | bool | None:
        job = self.jobs.get(job_id)
        return None if job is None else job.source

    def foreign_pending(self, limit: int = FOREIGN_SCAN) -> str | None:
        for lst in (self.wait, [], self.active):  # wait, paused (never used), active
            for i in lst[:limit]:
                if self.job_source(i) is False:
                    return i
        for i in sorted(self.delayed, key=lambda j: (self.delayed[j], j))[:limit]:
            if self.job_source(i) is False:
                return i
        return None

    def noted_end(self, source: str, last: str | None, now: int) -> int | None:
        """noted_end: the marker's job's end on Redis's clock, noted the first time anyone looks
        after it ended (never the worker's finishedOn)."""
        mk = self.marker(source)
        if mk.ended is not None:
            return mk.ended
        if last is not None and self.jobs[last].finished_on is not None:
            mk.ended = now
            self.version += 1
            return now
        return None

    def own_job(self, source: str) -> str | None:
        last = self.marker(source).job if source in self.markers else None
        if last is not None and self.job_source(last) == source:
            return last
        return None

    # --- the scripts ----------------------------------------------------------------------

    def request_refresh(
        self,
        source: str,
        data: dict[str, Any],
        *,
        timestamp: int,
        cooldown_ms: int,
        force: bool,
        default_source: bool,
        attempts: int = 3,
        backoff_ms: int = 60_000,
        keep: int = 100,
    ) -> tuple[str | None, str, int]:
        """REFRESH: {job id | None, state, ms left}."""
        self.check()
        last = self.own_job(source)
        if last is not None and self.is_pending(last):
            return last, "coalesced", 0
        if default_source:
            other = self.foreign_pending()
            if other is not None:
                return other, "coalesced", 0
        m = self.markers.get(source, Marker())
        if not force:
            now = self.now_ms()
            ended = self.noted_end(source, last, now)
            cooling = ended + cooldown_ms - now if ended is not None else 0
            backing = (m.backoff_until or 0) - now
            if backing > 0 and backing >= cooling:
                return last, "backoff", backing
            if cooling > 0:
                return last, "cooldown", cooling
        job_id = self.add_job({**data, "source": source}, timestamp, attempts, backoff_ms, keep)
        mk = self.marker(source)
        mk.job, mk.created, mk.ended = job_id, timestamp, None
        self.outcomes.get(source, {}).pop(job_id, None)
        return job_id, "enqueued", 0

    def add_job(
        self, data: dict[str, Any], timestamp: int, attempts: int, backoff_ms: int, keep: int
    ) -> str:
        self.next_id += 1
        job_id = str(self.next_id)
        self.uids += 1
        # HSET over a left-over hash of the same id (after a partial flush) replaces its fields
        # but keeps the others: finishedOn of an old job with this id would survive.
        old = self.jobs.get(job_id)
        job = Job(job_id, data, timestamp, attempts, backoff_ms, keep, uid=self.uids)
        if old is not None:
            job.finished_on, job.returnvalue = old.finished_on, old.returnvalue
            job.attempts_made, job.failed_reason = old.attempts_made, old.failed_reason
        self.jobs[job_id] = job
        self.wait.insert(0, job_id)
        self.version += 1
        return job_id

    def pending_job(self, source: str, *, default_source: bool) -> str | None:
        """PENDING."""
        self.check()
        last = self.own_job(source)
        if last is not None and self.is_pending(last):
            return last
        if last is not None:
            self.noted_end(source, last, self.now_ms())
        return self.foreign_pending() if default_source else None

    def job_state(self, job_id: str, source: str | None) -> str:
        """JOB_STATE."""
        self.check()
        src = self.job_source(job_id)
        if src is None or (source and src is not False and src != source):
            return "missing"
        if job_id in self.completed:
            return "completed"
        if job_id in self.failed:
            return "failed"
        if self.is_pending(job_id):
            return "pending"
        job = self.jobs[job_id]
        if job.finished_on is not None:
            return "completed" if job.returnvalue is not None else "failed"
        return "missing"

    def record_outcome(
        self, source: str, job_id: str, ok: bool, base_ms: int, max_ms: int
    ) -> tuple[int, int | None]:
        """OUTCOME: {failures, backoff_until ms | None}."""
        self.check()
        now = self.now_ms()
        outcomes = self.outcomes.setdefault(source, {})
        mk = self.marker(source)
        if job_id not in outcomes:
            outcomes[job_id] = now
            if len(outcomes) > OUTCOMES_KEPT:  # ZREMRANGEBYRANK 0 -1-kept: the lowest scores go
                ranked = sorted(outcomes.items(), key=lambda kv: (kv[1], kv[0]))
                for k, _ in ranked[: len(outcomes) - OUTCOMES_KEPT]:
                    del outcomes[k]
            if ok:
                mk.failures, mk.backoff_until = 0, None
            else:
                n = (mk.failures or 0) + 1
                mk.failures = n
                wait = min(float(max_ms), float(base_ms) * 2.0 ** (n - 1))
                mk.backoff_until = math.floor(now + wait)
            if mk.job == job_id and mk.ended is None:
                mk.ended = now  # HSETNX: Redis's clock, not the worker's
            self.version += 1
        return mk.failures or 0, mk.backoff_until

    def reset_backoff(self, source: str) -> None:
        self.check()
        mk = self.marker(source)
        mk.failures, mk.backoff_until = 0, None
        self.version += 1

    def share_diagnosis(self, source: str, diagnosis: Any, ttl_s: float) -> None:
        """SET ... PX ttl, or DEL: why fresh cookies cannot help, shared by every daemon."""
        self.check()
        key = "diagnosis:" + source
        if diagnosis is None:
            self.extra.pop(key, None)
        else:
            self.extra[key] = (diagnosis, self.now_ms() + max(1, int(ttl_s * 1000)))
        self.version += 1

    def epoch(self, candidate: str) -> str:
        """Notices.epoch (redisconn.py's _EPOCH): the word Redis keeps, made anew once gone."""
        self.check()
        cur = self.extra.get("epoch")
        if not isinstance(cur, str):
            self.extra["epoch"] = cur = candidate
            self.version += 1
        return cur

    def shared_diagnosis(self, source: str) -> Any:
        self.check()
        found = self.extra.get("diagnosis:" + source)
        if found is None or found[1] <= self.now_ms():
            return None
        return found[0]

    def backoff_state(self, source: str) -> tuple[int, int | None]:
        self.check()
        mk = self.markers.get(source, Marker())
        return mk.failures or 0, mk.backoff_until

    def counts(self) -> dict[str, int]:
        self.check()
        return {
            "waiting": len(self.wait),
            "active": len(self.active),
            "completed": len(self.completed),
            "failed": len(self.failed),
            "delayed": len(self.delayed),
            "paused": 0,
        }

    def recent_finished(
        self, judged: Any = (), limit: int = 200
    ) -> tuple[list[Job], frozenset[str]]:
        """BullQueue.recent_finished: the newest `limit` of each set by rank, whatever their
        finishedOn; (jobs not judged, the judged keys of every job read)."""
        from cookie_supervisor.model import judged_key

        self.check()
        window: set[str] = set()
        found: list[Job] = []
        for zset in (self.completed, self.failed):
            ids = sorted(zset, key=lambda i: (zset[i], i), reverse=True)[:limit]
            for i in ids:
                key = judged_key(i, zset[i] / 1000)
                window.add(key)
                if key not in judged and i in self.jobs and self.jobs[i].finished_on is not None:
                    found.append(self.jobs[i])
        window |= {judged_key(j.job_id, (j.finished_on or 0) / 1000) for j in found}
        return sorted(found, key=lambda j: j.finished_on or 0), frozenset(window)

    def pending_progress(self, job_id: str) -> tuple[float, float | None] | None:
        """BullQueue.pending_progress: (created s, taken s or None)."""
        self.check()
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if job_id not in self.active:
            return job.timestamp / 1000, None
        taken = job.processed_on or job.timestamp
        return job.timestamp / 1000, taken / 1000

    def finished_since(self, since_ms: int, limit: int = 200) -> list[Job]:
        """BullQueue.finished_since: newest `limit` of each set at or after since_ms, oldest
        first, only those with a finishedOn."""
        self.check()
        found: list[Job] = []
        for zset in (self.completed, self.failed):
            ids = sorted(
                (i for i, s in zset.items() if s >= since_ms),
                key=lambda i: (zset[i], i),
                reverse=True,
            )[:limit]
            found += [self.jobs[i] for i in ids if i in self.jobs]
        kept = sorted(
            (j for j in found if j.finished_on is not None), key=lambda j: j.finished_on or 0
        )
        return kept[-limit:]

    # --- a bull v4 worker ------------------------------------------------------------------

    def promote(self) -> None:
        """Delayed jobs whose time came go back to wait (bull's updateDelaySet)."""
        now = self.now_ms()
        for job_id, due in sorted(self.delayed.items(), key=lambda kv: kv[1]):
            if due <= now:
                del self.delayed[job_id]
                self.wait.insert(0, job_id)
                self.version += 1

    def take(self, worker_ms: int | None = None) -> Job | None:
        """BRPOPLPUSH wait -> active; the worker stamps processedOn with its clock."""
        if not self.up:
            return None
        self.promote()
        if not self.wait:
            return None
        job_id = self.wait.pop()
        self.active.insert(0, job_id)
        self.version += 1
        job = self.jobs[job_id]
        job.processed_on = worker_ms
        return job

    def finish(self, job: Job, ok: bool, worker_ms: int, reason: str = "") -> bool:
        """moveToFinished / retry. Returns False when the job was lost (flushed meanwhile)."""
        if not self.up or self.jobs.get(job.job_id) is not job or job.job_id not in self.active:
            return False
        self.active.remove(job.job_id)
        job.attempts_made += 1
        self.version += 1
        if not ok and job.attempts_made < job.attempts:
            delay = job.backoff_ms * 2 ** (job.attempts_made - 1)
            job.failed_reason = reason
            self.delayed[job.job_id] = worker_ms + delay
            return True
        job.finished_on = worker_ms
        zset = self.completed if ok else self.failed
        if ok:
            job.returnvalue = json.dumps({"ok": True})
        else:
            job.failed_reason = reason
        zset[job.job_id] = worker_ms
        if len(zset) > job.keep:  # removeOnComplete / removeOnFail: keep the newest
            for old in sorted(zset, key=lambda i: (zset[i], i))[: len(zset) - job.keep]:
                del zset[old]
                self.jobs.pop(old, None)
        return True
