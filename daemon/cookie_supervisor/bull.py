"""Bull v4's Redis protocol on redis-py (asyncio): jobs a Node `bull` worker takes as its own.

The add path is one Lua script of ours that does what bull's `addJob` does, in the same order and
atomically (see docs/bull-protocol.md §3): hash before push, the paused check with the push, the
custom-id check with the write. `request_refresh` wraps that add in the coalescing rule, inside
the same script, so any number of triggers from any number of daemons leave at most one pending
job per source. Our own keys live outside Bull's `<prefix>:<queue>:` namespace, where job ids are.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

# add_job(keys, base, custom_id, name, data, opts, timestamp, delay, priority, lifo, token)
# keys: wait, paused, meta-paused, id, delayed, priority. Returns {jobId, created 1|0}.
_ADD_JOB = """
local function add_job(k, base, custom_id, name, data, opts, ts, delay, priority, lifo, token)
  local n = redis.call("INCR", k[4])
  local job_id = tostring(n)
  if custom_id ~= "" then
    job_id = custom_id
    if redis.call("EXISTS", base .. job_id) == 1 then
      redis.call("PUBLISH", base .. "duplicated@" .. token, job_id)
      return {job_id, 0}
    end
  end
  redis.call("HSET", base .. job_id, "name", name, "data", data, "opts", opts,
             "timestamp", ts, "delay", delay, "priority", priority)
  delay = tonumber(delay)
  if delay > 0 then
    -- numbers, not strings: Lua's tostring would round a 16-digit score to 14 digits
    local due = tonumber(ts) + delay
    redis.call("ZADD", k[5], due * 0x1000 + bit.band(n, 0xfff), job_id)
    redis.call("PUBLISH", k[5], due)
    return {job_id, 1}
  end
  local target = k[1]
  if redis.call("EXISTS", k[3]) == 1 then target = k[2] end
  priority = tonumber(priority)
  if priority == 0 then
    redis.call(lifo == "1" and "RPUSH" or "LPUSH", target, job_id)
  else
    redis.call("ZADD", k[6], priority, job_id)
    local count = redis.call("ZCOUNT", k[6], 0, priority)
    local len = redis.call("LLEN", target)
    local pivot = redis.call("LINDEX", target, len - (count - 1))
    if pivot then
      redis.call("LINSERT", target, "BEFORE", pivot, job_id)
    else
      redis.call("RPUSH", target, job_id)
    end
  end
  redis.call("PUBLISH", k[1] .. "ing@" .. token, job_id)
  return {job_id, 1}
end

-- a job is pending while it sits in wait, paused or active, or in delayed (incl. between retries)
local function is_pending(k, active, job_id)
  return redis.call("ZSCORE", k[5], job_id)
      or redis.call("LPOS", k[1], job_id) or redis.call("LPOS", k[2], job_id)
      or redis.call("LPOS", active, job_id)
end
"""

_ADD = (
    _ADD_JOB
    + """
return add_job(KEYS, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
               ARGV[9], ARGV[10])
"""
)

# keys: the six of add_job, active, marker. ARGV: base, name, data, opts, ts, token,
# cooldown ms, force. Returns {jobId|false, state, cooldown ms left}.
_REFRESH = (
    _ADD_JOB
    + """
local marker = KEYS[8]
local last = redis.call("HGET", marker, "job")
if last then
  if is_pending(KEYS, KEYS[7], last) then
    return {last, "coalesced", 0}
  end
  local ended = tonumber(redis.call("HGET", ARGV[1] .. last, "finishedOn")
                        or redis.call("HGET", marker, "created") or 0)
  local t = redis.call("TIME")
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local left = ended + tonumber(ARGV[7]) - now
  if ARGV[8] ~= "1" and left > 0 then
    return {last, "cooldown", left}
  end
end
local added = add_job(KEYS, ARGV[1], "", ARGV[2], ARGV[3], ARGV[4], ARGV[5], "0", "0", "0",
                      ARGV[6])
redis.call("HSET", marker, "job", added[1], "created", ARGV[5])
return {added[1], "enqueued", 0}
"""
)

# keys: wait, paused, meta-paused, id, delayed, priority, active, marker. Returns jobId|false.
_PENDING = (
    _ADD_JOB
    + """
local last = redis.call("HGET", KEYS[8], "job")
if last and is_pending(KEYS, KEYS[7], last) then return last end
return false
"""
)

# getJobCounts() order: waiting, active, completed, failed, delayed, paused
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

    @property
    def total(self) -> int:
        return (
            self.waiting + self.active + self.completed + self.failed + self.delayed + self.paused
        )

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
    state: Literal["enqueued", "coalesced", "cooldown"]
    job_id: str | None
    retry_after: float | None = None  # seconds of cooldown left


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


class BullQueue:
    """One Bull queue: add jobs as `queue.add()` does, count them as `getJobCounts()` does."""

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
        self._keys = [b + s for s in ("wait", "paused", "meta-paused", "id", "delayed", "priority")]
        self._active = b + "active"
        self._add = _Script(redis, _ADD)
        self._refresh = _Script(redis, _REFRESH)
        self._pending = _Script(redis, _PENDING)

    async def add(
        self,
        data: Mapping[str, Any],
        *,
        job_id: str | None = None,
        attempts: int = 1,
        backoff: int | Mapping[str, Any] | None = None,
        delay_ms: int = 0,
        priority: int = 0,
        lifo: bool = False,
        remove_on_complete: bool | int | None = None,
        remove_on_fail: bool | int | None = None,
    ) -> tuple[str, bool]:
        """Add one job; returns its id and whether it was created (False: duplicate custom id)."""
        if job_id is not None and (not job_id or job_id.isdigit() or ":" in job_id):
            raise ValueError("a custom job id must be non-empty, not all digits, without ':'")
        timestamp = int(time.time() * 1000)
        opts: dict[str, Any] = {}
        if job_id is not None:
            opts["jobId"] = job_id
        if priority:
            opts["priority"] = priority
        if lifo:
            opts["lifo"] = True
        if remove_on_complete is not None:
            opts["removeOnComplete"] = remove_on_complete
        if remove_on_fail is not None:
            opts["removeOnFail"] = remove_on_fail
        opts.update(attempts=attempts, delay=delay_ms, timestamp=timestamp)
        if backoff is not None:
            opts["backoff"] = (
                {"type": "fixed", "delay": backoff} if isinstance(backoff, int) else dict(backoff)
            )
        args = (
            self.base,
            job_id or "",
            self.job_name,
            _json(data),
            _json(opts),
            timestamp,
            delay_ms,
            priority,
            "1" if lifo else "0",
            self.token,
        )
        new_id, created = await self._add(self._keys, args)
        return _text(new_id), bool(created)

    async def request_refresh(
        self,
        source: str,
        data: Mapping[str, Any],
        opts: JobOptions,
        *,
        cooldown_s: float,
        force: bool = False,
    ) -> RefreshResult:
        """Add a refresh job for `source` unless one is pending or its cooldown runs."""
        timestamp = int(time.time() * 1000)
        job_opts = {
            "attempts": opts.attempts,
            "backoff": {"type": "exponential", "delay": opts.backoff_ms},
            "removeOnComplete": opts.keep,
            "removeOnFail": opts.keep,
            "delay": 0,
            "timestamp": timestamp,
        }
        keys = [*self._keys, self._active, self.own + "pending:" + source]
        args = (
            self.base,
            self.job_name,
            _json(data),
            _json(job_opts),
            timestamp,
            self.token,
            int(cooldown_s * 1000),
            "1" if force else "0",
        )
        job_id, state, left = await self._refresh(keys, args)
        retry_after = int(left) / 1000 if _text(state) == "cooldown" else None
        return RefreshResult(_text(state), _text(job_id), retry_after)  # type: ignore[arg-type]

    async def pending_job(self, source: str) -> str | None:
        keys = [*self._keys, self._active, self.own + "pending:" + source]
        job_id = await self._pending(keys, ())
        return _text(job_id) if job_id else None

    async def counts(self) -> JobCounts:
        b = self.base
        async with self.redis.pipeline(transaction=True) as pipe:
            for kind, suffix in _COUNTED:
                (pipe.llen if kind == "list" else pipe.zcard)(b + suffix)
            values = await pipe.execute()
        return JobCounts(*(int(v) for v in values))

    async def finished_since(self, since_ms: int, limit: int = 200) -> list[FinishedJob]:
        """Jobs that completed or failed at or after `since_ms`, oldest first."""
        ids: list[tuple[str, Literal["completed", "failed"]]] = []
        outcomes: tuple[Literal["completed", "failed"], ...] = ("completed", "failed")
        for outcome in outcomes:
            found = await self.redis.zrangebyscore(
                self.base + outcome, since_ms, "+inf", start=0, num=limit
            )
            ids += [(_text(i), outcome) for i in found]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id, _ in ids:
                pipe.hmget(self.base + job_id, _FINISHED_FIELDS)
            rows = await pipe.execute()
        jobs = [
            _finished(job_id, outcome, row)
            for (job_id, outcome), row in zip(ids, rows, strict=True)
        ]
        return sorted((j for j in jobs if j is not None), key=lambda j: j.finished_at)

    async def aclose(self) -> None:
        """Close the scripts' own connections (the client's pool is the caller's to close)."""
        for script in (self._add, self._refresh, self._pending):
            await script.aclose()

    async def claim(self, key: str, ttl_s: float) -> bool:
        """A lease: True for exactly one caller until `ttl_s` passes."""
        return bool(
            await self.redis.set(
                self.own + "lease:" + key, "1", nx=True, px=max(1, int(ttl_s * 1000))
            )
        )


class _Script:
    """EVALSHA with auto-pipelining, the way ioredis pipelines concurrent commands: with no round
    trip under way a call goes out at once; calls made while one is under way are batched and go
    out together, in one write on one connection, when it returns. Commands are packed here: the
    keys never change, so their RESP encoding is made once, not per call."""

    def __init__(self, redis: Redis, source: str) -> None:
        self.redis = redis
        self.source = source
        self.sha: bytes | None = None
        # A connection of its own: replies come back in order, and no pool round trip per call.
        self._conn = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        self._busy = False
        self._batch: list[tuple[Sequence[str], Sequence[Any], asyncio.Future[Any]]] = []
        self._packed_keys: dict[tuple[str, ...], bytes] = {}

    async def __call__(self, keys: Sequence[str], args: Sequence[Any]) -> Any:
        if self._busy:
            fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._batch.append((keys, args, fut))
            return await fut
        self._busy = True
        try:
            [result] = await self._run([(keys, args)])
        finally:
            self._next()
        if isinstance(result, BaseException):
            raise result
        return result

    def _next(self) -> None:
        self._busy = bool(self._batch)
        if self._batch:
            batch, self._batch = self._batch, []
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(
        self, batch: list[tuple[Sequence[str], Sequence[Any], asyncio.Future[Any]]]
    ) -> None:
        try:
            results = await self._run([(keys, args) for keys, args, _ in batch])
        except BaseException as exc:  # a connection error belongs to every caller in the batch
            results = [exc] * len(batch)
        finally:
            self._next()
        for (*_, fut), result in zip(batch, results, strict=True):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)

    async def _run(self, calls: list[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        conn = self._conn
        try:
            if self.sha is None:
                await conn.send_command("SCRIPT", "LOAD", self.source)
                self.sha = await conn.read_response()
            await conn.send_packed_command(b"".join(self._pack(k, a) for k, a in calls))
            results = [await _reply(conn) for _ in calls]
        except BaseException:
            await conn.disconnect()  # replies may be half read: start afresh next time
            raise
        if any(isinstance(r, NoScriptError) for r in results):  # Redis restarted, or flushed
            self.sha = None
            self._packed_keys.clear()
            return await self._run(calls)
        return results

    async def aclose(self) -> None:
        await self._conn.disconnect()

    def _pack(self, keys: Sequence[str], args: Sequence[Any]) -> bytes:
        assert self.sha is not None
        key_tuple = tuple(keys)
        head = self._packed_keys.get(key_tuple)
        if head is None:
            head = b"".join(_bulk(x) for x in (b"EVALSHA", self.sha, len(keys), *keys))
            self._packed_keys[key_tuple] = head
        return b"*%d\r\n%b%b" % (3 + len(keys) + len(args), head, b"".join(map(_bulk, args)))


async def _reply(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except ResponseError as exc:  # an error reply is one caller's, the rest stay readable
        return exc


def _bulk(value: Any) -> bytes:
    raw = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(raw), raw)


def _finished(
    job_id: str, outcome: Literal["completed", "failed"], row: list[bytes | None]
) -> FinishedJob | None:
    data_raw, finished_on, attempts, failed_reason, timestamp = row
    if finished_on is None:  # trimmed between the two reads, or not ours to read
        return None
    try:
        data = json.loads(data_raw or b"{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    source, reason = data.get("source"), data.get("reason")
    return FinishedJob(
        job_id=job_id,
        source=source if isinstance(source, str) else None,
        reason=reason if isinstance(reason, str) else None,
        outcome=outcome,
        finished_at=int(finished_on) / 1000,
        attempts_made=int(attempts or 0),
        failed_reason=_text(failed_reason) if failed_reason is not None else None,
        created_at=int(timestamp or 0) / 1000,
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["BullQueue", "FinishedJob", "JobCounts", "JobOptions", "RefreshResult", "ResponseError"]
