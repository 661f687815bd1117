"""Bull v4's Redis protocol on redis-py (asyncio): refresh jobs a Node bull worker takes.

What it owns: the atomic refresh request (coalescing onto a pending job, cooldown, refresh
backoff), the backoff bookkeeping shared by every daemon on one Redis, a job's state, counts and
finished jobs, read the way bull's own Queue reads them. Every decision that several daemons must
agree on runs inside one Lua script, so it is atomic in Redis. The wire facts relied on are in
docs/bull.md; our own keys live outside bull's `<prefix>:<queue>:` namespace (docs/bull.md §7).
Redis as a connection (dialling, the retry after a restart, error descriptions) and the
notification leases are redisconn.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from redis.asyncio import Redis

from cookie_supervisor import bull_scripts as scripts
from cookie_supervisor.classify import Reason, redact, scrub_tree
from cookie_supervisor.model import PendingJob, TriggerState, judged_key
from cookie_supervisor.redisconn import Notices, retrying

log = logging.getLogger(__name__)
T = TypeVar("T")
# What Redis can answer a request: the daemon's one vocabulary of trigger outcomes (model.py).
RefreshState = TriggerState
JobState = Literal["pending", "completed", "failed", "missing"]

# How many ids per list a default-source request looks at for a job someone else enqueued.
# Pending lists hold at most one job per source of ours, so a few suffice.
FOREIGN_SCAN = 100
# Outcomes remembered per source, so that two daemons reporting one job count it once.
OUTCOMES_KEPT = 100
# Bounds on what is read back from Redis, where any producer (or person) may have written: a
# millisecond time up to 9999-01-01, a count, the bytes of a job's data and failure text.
LATEST_MS = 253_370_764_800_000
MAX_COUNT = 1_000_000
MAX_DATA = 1 << 20
MAX_FAILED_REASON = 4096

# getJobCounts() order: waiting, active, completed, failed, delayed, paused (docs/bull.md §6)
_COUNTED = (
    ("list", "wait"),
    ("list", "active"),
    ("zset", "completed"),
    ("zset", "failed"),
    ("zset", "delayed"),
    ("list", "paused"),
)
_FINISHED_FIELDS = ("data", "finishedOn", "attemptsMade", "failedReason", "timestamp")


@dataclass(frozen=True, slots=True)
class JobCounts:
    """What bull's `queue.getJobCounts()` returns, from the same MULTI/EXEC snapshot."""

    waiting: int
    active: int
    completed: int
    failed: int
    delayed: int
    paused: int

    def as_dict(self) -> dict[str, int]:
        return {
            "waiting": self.waiting,
            "active": self.active,
            "completed": self.completed,
            "failed": self.failed,
            "delayed": self.delayed,
            "paused": self.paused,
        }


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Options of a refresh job: retries with exponential backoff, bounded retention."""

    attempts: int = 3
    backoff_ms: int = 60_000
    keep: int = 100


@dataclass(frozen=True, slots=True)
class RefreshResult:
    state: RefreshState
    job_id: str | None  # the new or pending job; for cooldown/backoff the source's last, if known
    retry_after: float | None = None  # seconds of cooldown or backoff left


@dataclass(frozen=True, slots=True)
class BackoffState:
    failures: int  # consecutive unsuccessful refreshes
    until: float | None  # epoch seconds before which automatic refreshes wait; None: no backoff


@dataclass(frozen=True, slots=True)
class FinishedJob:
    job_id: str
    source: str | None
    reason: str | None
    outcome: Literal["completed", "failed"]
    finished_at: float
    attempts_made: int
    failed_reason: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at the queue (`BullQueue.observe`)."""

    epoch: str
    counts: JobCounts
    pending: dict[str, str | None]
    finished: tuple[FinishedJob, ...]
    window: frozenset[str]  # the judged keys of every finished job read
    vanished: frozenset[str]  # pending jobs Redis no longer has, unfinished
    backoffs: dict[str, BackoffState]
    diagnoses: dict[str, Reason | None]
    progress: dict[str, PendingJob]


class JobAsk(Protocol):
    """What a refresh job is asked for (the core's `Enqueue`)."""

    @property
    def reason(self) -> Reason: ...
    @property
    def source(self) -> str: ...
    @property
    def origin(self) -> str: ...
    @property
    def video_id(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def detail(self) -> str | None: ...


def job_data(
    ask: JobAsk, cookies_file: str, requested_at: float, host: str, error_limit: int = 500
) -> dict[str, Any]:
    """A refresh job's data, as the extractor reads it (docs/bull.md): redacted, scrubbed."""
    data: dict[str, Any] = {
        "reason": ask.reason.value,
        "source": ask.source,
        "cookies_file": cookies_file,
        "requested_at": dt.datetime.fromtimestamp(requested_at, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "host": host,
        "origin": ask.origin,
    }
    if ask.video_id:
        data["video_id"] = ask.video_id
    if ask.error:
        data["error"] = redact(ask.error, error_limit)
    if ask.detail:
        data["detail"] = redact(ask.detail, 200)
    return scrub_tree(data)  # type: ignore[no-any-return]


class BullQueue:
    """One Bull queue, as the refresh producer sees it: requests, backoff, job states, counts."""

    def __init__(
        self,
        redis: Redis,
        name: str = "cookie-refresh",
        *,
        prefix: str = "bull",
        job_name: str = "__default__",
    ) -> None:
        self.redis = redis
        self.name = name
        self.job_name = job_name
        self.base = f"{prefix}:{name}:"
        self.own = f"cookie-supervisor:{prefix}:{name}:"
        self.token = str(uuid.uuid4())  # like a bull Queue instance's, for its pub/sub channels
        b = self.base
        suffixes = ("wait", "paused", "meta-paused", "id", "delayed", "priority", "active")
        self.keys = [b + s for s in suffixes]
        self._refresh = redis.register_script(scripts.REFRESH)
        self._pending = redis.register_script(scripts.PENDING)
        self._job_state = redis.register_script(scripts.JOB_STATE)
        self._outcome = redis.register_script(scripts.OUTCOME)
        self._inflight: dict[tuple[Any, ...], asyncio.Task[RefreshResult]] = {}
        # Notification leases, the epoch and incidents (docs/bull.md §9) live beside the queue's
        # own keys; the queue hands them out so the runtime holds one Redis-facing object.
        self.notices = Notices(redis, self.own)
        self.claim = self.notices.claim
        self.settle = self.notices.settle
        self.epoch = self.notices.epoch
        self.open_incident = self.notices.open_incident
        self.close_incident = self.notices.close_incident

    def _marker(self, source: str) -> str:
        return self.own + "pending:" + source  # docs/bull.md §7: job, created, ended, backoff

    async def request_refresh(
        self,
        source: str,
        data: Mapping[str, Any],
        opts: JobOptions,
        *,
        cooldown_s: float,
        force: bool = False,
        default_source: bool = False,
    ) -> RefreshResult:
        """Add a refresh job for `source` unless one is pending, or (unless `force`) its cooldown
        or backoff runs. With `default_source`, a pending job another producer added counts too.

        Concurrent identical requests share one round trip: the first decides, and the others get
        its answer, an enqueue becoming "coalesced" for them, as it would be one instant later."""
        key = (source, force, default_source, cooldown_s)
        task = self._inflight.get(key)
        if task is not None:
            result = await asyncio.shield(task)
            if result.state == "enqueued":
                return RefreshResult("coalesced", result.job_id)
            return result
        task = asyncio.ensure_future(
            self._request(source, data, opts, cooldown_s, force, default_source)
        )
        self._inflight[key] = task
        task.add_done_callback(lambda t: self._settled(key, t))
        return await asyncio.shield(task)

    def _settled(self, key: tuple[Any, ...], task: asyncio.Task[RefreshResult]) -> None:
        del self._inflight[key]
        if not task.cancelled():
            task.exception()  # every awaiter may have gone; the error is theirs, not the loop's

    async def _request(
        self,
        source: str,
        data: Mapping[str, Any],
        opts: JobOptions,
        cooldown_s: float,
        force: bool,
        default_source: bool,
    ) -> RefreshResult:
        timestamp = int(time.time() * 1000)
        job_opts = {
            "attempts": opts.attempts,
            "backoff": {"type": "exponential", "delay": opts.backoff_ms},
            "removeOnComplete": opts.keep,
            "removeOnFail": opts.keep,
            "delay": 0,
            "timestamp": timestamp,
        }
        keys = [*self.keys, self._marker(source), self.own + "outcomes:" + source]
        args = (
            self.base,
            self.job_name,
            _json({**data, "source": source}),  # how the marker knows its job (docs/bull.md §7)
            _json(job_opts),
            timestamp,
            self.token,
            int(cooldown_s * 1000),
            "1" if force else "0",
            source,
            "1" if default_source else "0",
            FOREIGN_SCAN,
        )
        job_id, state, left = await self._retrying(lambda: self._refresh(keys, args))
        st = _text(state)
        wait_ms = _ms(left)
        retry_after = wait_ms / 1000 if st in ("cooldown", "backoff") and wait_ms else None
        return RefreshResult(st, _text(job_id) if job_id else None, retry_after)  # type: ignore[arg-type]

    async def pending_job(self, source: str, *, default_source: bool = False) -> str | None:
        """The source's pending job: the marker's own job if it is still waiting, delayed or
        active; with `default_source`, else any pending job that another producer added."""
        keys = [*self.keys, self._marker(source)]
        args = (self.base, source, "1" if default_source else "0", FOREIGN_SCAN)
        job_id = await self._retrying(lambda: self._pending(keys, args))
        return _text(job_id) if job_id else None

    async def pending_progress(self, job_id: str) -> PendingJob | None:
        """When a pending job was created and, while a worker holds it (in `active`), when that
        worker took it. None when the job's hash is gone or its creation time is unreadable."""

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hmget(self.base + job_id, ["timestamp", "processedOn"])
                pipe.lpos(self.base + "active", job_id)
                return await pipe.execute()

        (created, processed), position = await self._retrying(read)
        created_ms = _ms(created)
        if created_ms is None:
            return None
        taken_ms = _ms(processed) if position is not None else None
        # A worker that took it but has not stamped processedOn yet: taken, at an unknown time.
        taken = (taken_ms if taken_ms else created_ms) / 1000 if position is not None else None
        return PendingJob(created_ms / 1000, taken)

    async def job_state(self, job_id: str, *, source: str | None = None) -> JobState:
        """Where a job is. "missing": no such job (vanished: a Redis restarted empty, FLUSHALL,
        an obliterate); with `source`, also a job that names another source (a reused id)."""
        keys = [*self.keys, self.base + "completed", self.base + "failed"]
        args = (self.base, job_id, source or "")
        state = await self._retrying(lambda: self._job_state(keys, args))
        return _text(state)  # type: ignore[return-value]

    async def record_refresh_outcome(
        self, source: str, job_id: str, ok: bool, *, base_s: float, max_s: float
    ) -> BackoffState:
        """Book one refresh's outcome for the backoff, once per job however many daemons report
        it: a failure waits base × 2^(n-1) (at most `max_s`) from now; a success resets."""
        keys = [self._marker(source), self.own + "outcomes:" + source]
        args = (
            self.base,
            job_id,
            "1" if ok else "0",
            int(base_s * 1000),
            int(max_s * 1000),
            OUTCOMES_KEPT,
        )
        failures, until = await self._retrying(lambda: self._outcome(keys, args))
        return _backoff(failures, until)

    async def reset_backoff(self, source: str) -> None:
        """A validation passed: the count of unsuccessful refreshes starts again."""

        async def reset() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._marker(source), "failures", 0)
                pipe.hdel(self._marker(source), "backoff_until")
                await pipe.execute()

        await self._retrying(reset)

    async def share_diagnosis(self, source: str, diagnosis: str | None, ttl_s: float) -> None:
        """Tell every daemon on this Redis why fresh cookies cannot help `source` (docs/bull.md
        §7), for `ttl_s` unless confirmed again; None: it no longer holds."""
        key = self.own + "diagnosis:" + source
        if diagnosis is None:
            await self._retrying(lambda: self.redis.delete(key))
        else:
            ttl = max(1, int(ttl_s * 1000))
            await self._retrying(lambda: self.redis.set(key, diagnosis, px=ttl))

    async def shared_diagnosis(self, source: str) -> str | None:
        """The diagnosis some daemon shared for `source`, if it stands (at most 64 bytes read)."""
        raw = await self._retrying(
            lambda: self.redis.getrange(self.own + "diagnosis:" + source, 0, 63)
        )
        if isinstance(raw, bytes):
            raw = raw.decode(errors="replace")
        return str(raw) if raw else None

    async def backoff_state(self, source: str) -> BackoffState:
        failures, until = await self._retrying(
            lambda: self.redis.hmget(self._marker(source), ["failures", "backoff_until"])
        )
        return _backoff(failures, until)

    async def counts(self) -> JobCounts:
        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=True) as pipe:
                for kind, suffix in _COUNTED:
                    (pipe.llen if kind == "list" else pipe.zcard)(self.base + suffix)
                return await pipe.execute()

        return JobCounts(*(_count(v) for v in await self._retrying(read)))

    async def finished_since(self, since_ms: int, limit: int = 200) -> list[FinishedJob]:
        """The newest `limit` jobs that completed or failed at or after `since_ms`, oldest first."""
        return await self._retrying(lambda: self._finished_since(since_ms, limit))

    async def _finished_since(self, since_ms: int, limit: int) -> list[FinishedJob]:
        outcomes: tuple[Literal["completed", "failed"], ...] = ("completed", "failed")
        async with self.redis.pipeline(transaction=True) as pipe:
            for outcome in outcomes:  # scores are finishedOn: newest first, then cut
                pipe.zrevrangebyscore(self.base + outcome, "+inf", since_ms, start=0, num=limit)
            found = await pipe.execute()
        ids = [(_text(i), o) for o, members in zip(outcomes, found, strict=True) for i in members]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in ids:
                pipe.hmget(self.base + job_id, _FINISHED_FIELDS)
            rows = await pipe.execute()
        jobs = [_parsed(i, o, row) for (i, o), row in zip(ids, rows, strict=True)]
        kept = sorted((j for j in jobs if j is not None), key=lambda j: j.finished_at)
        return kept[-limit:]

    async def recent_finished(
        self, judged: Collection[str] = (), limit: int = 200
    ) -> tuple[list[FinishedJob], frozenset[str]]:
        """The newest `limit` completed and failed jobs by rank, whatever their finishedOn says
        (a worker's clock may be minutes behind): (the jobs not in `judged`, the judged keys of
        every job read). Jobs are known by `model.judged_key`, never by a finishedOn cursor."""
        return await self._retrying(lambda: self._recent_finished(judged, limit))

    async def _recent_finished(
        self, judged: Collection[str], limit: int
    ) -> tuple[list[FinishedJob], frozenset[str]]:
        outcomes: tuple[Literal["completed", "failed"], ...] = ("completed", "failed")
        async with self.redis.pipeline(transaction=True) as pipe:
            for outcome in outcomes:
                pipe.zrevrange(self.base + outcome, 0, limit - 1, withscores=True)
            found = await pipe.execute()
        window: set[str] = set()
        ids: list[tuple[str, Literal["completed", "failed"]]] = []
        for outcome, members in zip(outcomes, found, strict=True):
            for member, score in members:
                job_id = _text(member)
                key = judged_key(job_id, score / 1000 if math.isfinite(score) else 0.0)
                window.add(key)
                if key not in judged:
                    ids.append((job_id, outcome))
        if not ids:
            return [], frozenset(window)
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in ids:
                pipe.hmget(self.base + job_id, _FINISHED_FIELDS)
            rows = await pipe.execute()
        jobs = [_parsed(i, o, row) for (i, o), row in zip(ids, rows, strict=True)]
        window |= {judged_key(j.job_id, j.finished_at) for j in jobs if j is not None}
        kept = sorted((j for j in jobs if j is not None), key=lambda j: j.finished_at)
        return kept, frozenset(window)

    async def observe(
        self,
        was_pending: Mapping[str, str | None],
        *,
        default_source: str | None,
        judged: Collection[str],
        candidate: str,
        backoffs: bool,
    ) -> Observation:
        """One look at the queue for the runtime's poll: the epoch first (the job ends read
        below are named in it), counts, each source's pending job and whether one it knew
        vanished, the jobs finished since `judged`, shared diagnoses, the pending jobs' progress;
        with `backoffs`, each source's backoff too (the history a restart recovers)."""
        epoch = await self.epoch(candidate)
        counts = await self.counts()
        pending = {
            name: await self.pending_job(name, default_source=name == default_source)
            for name in was_pending
        }
        finished, window = await self.recent_finished(judged)
        vanished = set()
        for name, was in was_pending.items():
            if (
                was is not None
                and pending[name] is None
                and await self.job_state(was, source=name) == "missing"
            ):
                vanished.add(was)
        found = {name: await self.backoff_state(name) for name in was_pending} if backoffs else {}
        diagnoses = {name: _reason(await self.shared_diagnosis(name)) for name in was_pending}
        progress: dict[str, PendingJob] = {}
        for name, job_id in pending.items():
            if job_id is not None and (taken := await self.pending_progress(job_id)):
                progress[name] = taken
        return Observation(
            epoch, counts, pending, tuple(finished), window, frozenset(vanished), found,
            diagnoses, progress,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Nothing of its own to close: the client's pool is the caller's."""

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retrying(self.redis, call)


def _reason(value: str | None) -> Reason | None:
    """A diagnosis read from Redis: a word we know, else nothing (Redis is not trusted)."""
    try:
        return Reason(value) if value else None
    except ValueError:
        return None


def _backoff(failures: Any, until: Any) -> BackoffState:
    until_ms = _ms(until)
    return BackoffState(_count(failures), until_ms / 1000 if until_ms else None)


def _ms(value: Any) -> int | None:
    """A millisecond time or duration as Redis holds it (text, int or float), within bounds."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except (ValueError, OverflowError):
            return None
        if math.isfinite(number) and 0 <= number <= LATEST_MS:
            return int(number)
    return None


def _count(value: Any) -> int:
    """A count (attempts, failures, a list's length); 0 when absent or absurd."""
    found = _ms(value)
    return found if found is not None and found <= MAX_COUNT else 0


_malformed: set[str] = set()  # finished jobs already warned about (bounded)


def _parsed(
    job_id: str, outcome: Literal["completed", "failed"], row: list[bytes | None]
) -> FinishedJob | None:
    """One finished job, or None: a job nobody can read is skipped, never the whole poll."""
    try:
        return _finished(job_id, outcome, row)
    except (ValueError, TypeError, RecursionError) as exc:
        if job_id not in _malformed and len(_malformed) < 1000:
            _malformed.add(job_id)
            log.warning("finished job %.64s skipped: %s", job_id, exc)
        return None


def _finished(
    job_id: str, outcome: Literal["completed", "failed"], row: list[bytes | None]
) -> FinishedJob | None:
    data_raw, finished_on, attempts, failed_reason, timestamp = row
    if finished_on is None:  # trimmed between the two reads, or not ours to read
        return None
    finished_ms = _ms(finished_on)
    if finished_ms is None:
        raise ValueError("finishedOn is not a time")
    data: Any = {}
    if data_raw is not None and len(data_raw) <= MAX_DATA:
        with contextlib.suppress(ValueError, RecursionError):
            data = json.loads(data_raw)
    if not isinstance(data, dict):
        data = {}
    source, reason = data.get("source"), data.get("reason")
    return FinishedJob(
        job_id=job_id,
        source=source if isinstance(source, str) else None,
        reason=reason if isinstance(reason, str) else None,
        outcome=outcome,
        finished_at=finished_ms / 1000,
        attempts_made=_count(attempts),
        failed_reason=None if failed_reason is None else _text(failed_reason)[:MAX_FAILED_REASON],
        created_at=(_ms(timestamp) or 0) / 1000,
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> str:
    # Not every writer of a Redis key writes UTF-8: a foreign job id or failure text must not
    # stop the poll that reads it.
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


__all__ = [
    "BackoffState",
    "BullQueue",
    "FinishedJob",
    "JobCounts",
    "JobOptions",
    "JobState",
    "RefreshResult",
    "RefreshState",
]
