"""Redis as a connection: dialling it, surviving its restarts, living through its outages, saying
why it failed, and the notification leases several daemons on one Redis share.

What it owns: the client the daemon dials (a bounded pool, no retries inside redis-py), the one
retry on a fresh connection after a restart (`retrying`), an outage's bookkeeping (`Outage`: the
one place the runtime catches a Redis error, and how long its poll then waits), the description
of any Redis error for logs and status, the URL fit for a log line (a configured URL may carry a
password: it is never logged or exported as configured), and the Lua primitives behind webhook
notifications that any daemon may send but only one does (docs/bull.md §9). Bull's own keys and
scripts are bull.py's.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    BusyLoadingError,
    ConnectionError,
    MaxConnectionsError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry

T = TypeVar("T")

# Connection errors that a dead pooled connection does not cause: retrying cannot help.
_NOT_STALE = (AuthenticationError, AuthorizationError, BusyLoadingError, MaxConnectionsError)


def connect(url: str) -> Redis:
    """The daemon's client of the Redis at `url` (connected lazily, on first use)."""
    # No retries inside redis-py: `retrying` retries once on a fresh connection, and an outage is
    # a state the supervisor handles, fast. A bounded pool that waits: redis-py's default pool
    # raises at once past its cap, which would read as Redis down under a trigger storm.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=64,
        timeout=3,
        socket_connect_timeout=1.0,
        socket_timeout=3.0,
        retry=Retry(NoBackoff(), 0),
        client_name="cookie-supervisor",
    )
    return Redis(connection_pool=pool)


def masked_url(url: str) -> str:
    """The Redis URL fit for a log line: any password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def retrying(redis: Redis, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`, once more on a fresh connection if the first one was dead: after a Redis
    restart every pooled connection fails once, which is no outage. Timeouts and errors Redis
    answered are not retried."""
    try:
        return await call()
    except ConnectionError as exc:
        if isinstance(exc, _NOT_STALE):
            raise
        # the pool's idle connections died with the same server: drop them, dial afresh
        await redis.connection_pool.disconnect(inuse_connections=False)
        return await call()


class Outage:
    """Redis away, as the runtime lives it: a failed call is told to `down` in words fit for a
    log line (the URL masked), and each failure in a row pushes the next poll back (exponential
    with jitter, capped at `cap`) until a poll reads the queue again (`ended`)."""

    def __init__(
        self,
        url: str,
        cap: float,
        down: Callable[[str], Awaitable[object]],
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.down = down
        self.mono = mono
        self.failures = 0  # in a row
        self.retry_at = 0.0  # monotonic: the poll waits until then while Redis is down
        self._backoff = ExponentialWithJitterBackoff(cap=cap, base=0.5)

    async def guard(self, call: Awaitable[T]) -> T | None:
        """`call`'s result, or None when Redis failed it: the one place a RedisError is caught."""
        try:
            return await call
        except RedisError as exc:
            self.failures += 1
            self.retry_at = self.mono() + self._backoff.compute(self.failures)
            await self.down(f"{describe_redis_error(exc)} at {masked_url(self.url)}")
            return None

    def waiting(self) -> bool:
        """Whether the poll still waits out the backoff of the last failure."""
        return self.mono() < self.retry_at

    def ended(self) -> None:
        """A poll read the queue: the next failure backs off from the start."""
        self.failures = 0


def describe_redis_error(exc: BaseException) -> str:
    """The condition behind a Redis error, for logs and status: never the URL or its password."""
    if isinstance(exc, AuthenticationError) or _code(exc) in ("WRONGPASS", "NOAUTH"):
        return "authentication failed (wrong or missing password)"
    if isinstance(exc, AuthorizationError) or _code(exc) == "NOPERM":
        return "not permitted by the Redis user's ACL (NOPERM)"
    if isinstance(exc, OutOfMemoryError) or _code(exc) == "OOM":
        return "out of memory: Redis reached maxmemory and refuses writes (OOM)"
    if isinstance(exc, ReadOnlyError) or _code(exc) == "READONLY":
        return "read-only replica: writes need the primary (READONLY)"
    if isinstance(exc, BusyLoadingError):
        return "Redis is loading its dataset (LOADING)"
    if isinstance(exc, NoScriptError):
        return "script not loaded (NOSCRIPT)"
    if _code(exc) == "MISCONF":
        return "Redis cannot persist and refuses writes (MISCONF)"
    if _code(exc) == "BUSY":
        return "Redis is busy running a script (BUSY)"
    if isinstance(exc, TimeoutError):
        return "timed out waiting for Redis"
    if isinstance(exc, ConnectionError):
        return _connection_failure(exc)
    if isinstance(exc, ResponseError):
        return f"Redis refused the command ({_code(exc) or 'error'})"
    if isinstance(exc, RedisError):
        return f"Redis client error ({type(exc).__name__})"
    return type(exc).__name__


def _code(exc: BaseException) -> str:
    """The error code of a Redis error reply: its first word, when that is in capitals."""
    if not isinstance(exc, ResponseError | ConnectionError) or not exc.args:
        return ""
    first = str(exc.args[0]).split(" ", 1)[0]
    return first if first.isupper() and first.isalpha() else ""


def _connection_failure(exc: ConnectionError) -> str:
    number = None
    cause: BaseException | None = exc
    while cause is not None and number is None:  # the OSError underneath, when redis-py kept it
        number = cause.errno if isinstance(cause, OSError) else None
        cause = cause.__cause__ or cause.__context__
    if number is None:  # "Error 111 connecting to host:port. Connection refused."
        found = re.match(r"Error (-?\d+) ", str(exc))
        number = int(found.group(1)) if found else None
    phrases = {
        errno.ECONNREFUSED: "connection refused",
        errno.ECONNRESET: "connection reset",
        errno.ETIMEDOUT: "connection timed out",
        errno.EHOSTUNREACH: "host unreachable",
        errno.ENETUNREACH: "network unreachable",
        errno.EPIPE: "connection closed",
    }
    if number is not None and number in errno.errorcode:
        phrase = phrases.get(number, "cannot connect")
        return f"{phrase} ({errno.errorcode[number]})"
    if "timeout" in str(exc).lower():
        return "connection timed out"
    if "closed" in str(exc).lower():
        return "connection closed by Redis"
    if number is not None:  # a resolver error (negative numbers): the name does not resolve
        return f"cannot resolve the Redis host (error {number})"
    return "unreachable"


# --- notifications shared by several daemons (docs/bull.md §9) ---------------------------------


class Notices:
    """What the daemons on one Redis agree on so that each webhook event is sent once: a lease
    per event, the queue's epoch, the open incident per source. Keys live under `namespace`."""

    def __init__(self, redis: Redis, namespace: str) -> None:
        self.redis = redis
        self.namespace = namespace

    async def _eval(self, script: str, keys: list[str], *args: str | int) -> Any:
        return await retrying(self.redis, lambda: self.redis.eval(script, len(keys), *keys, *args))

    async def claim(self, key: str, owner: str, ttl_s: float) -> bool | float:
        """A lease on sending one notification: True when `owner` holds it now (taken or renewed
        for `ttl_s`), False when some daemon already settled it (sent or given up), else the
        seconds another owner's lease still runs — when that daemon dies, its lease runs out and
        the next daemon that asks takes it."""
        found = await self._eval(_LEASE, self._lease_keys(key), owner, _ttl_ms(ttl_s))
        code = int(found)
        return True if code == -2 else False if code == -1 else max(code, 0) / 1000

    async def settle(self, key: str, owner: str, ttl_s: float) -> None:
        """The notification is done with (delivered or given up): no daemon takes it again for
        `ttl_s`; the lease goes."""
        await self._eval(_SETTLE, self._lease_keys(key), owner, _ttl_ms(ttl_s))

    async def epoch(self, candidate: str) -> str:
        """This queue's epoch: a random word kept in Redis, made anew when the queue's keys are
        gone (a FLUSHALL, a new Redis). Event ids carry it, so job ids that start again at 1
        after a reset, or on another Redis, never make an id seen before."""
        found = await self._eval(_EPOCH, [self.namespace + "epoch"], candidate)
        return _text(found)[:64]

    async def open_incident(self, source: str, candidate: str, ttl_s: float) -> str:
        """The failing-validation incident of `source` every daemon on this Redis shares: the
        open one if there is one, else `candidate`, now open (for `ttl_s` unless joined again)."""
        key = self.namespace + "incident:" + source
        found = await self._eval(_INCIDENT_OPEN, [key], candidate, _ttl_ms(ttl_s))
        return _text(found)[:128]

    async def close_incident(self, source: str, incident: str, ttl_s: float) -> None:
        """`incident` is over (validation passes again): the next failure opens a new one."""
        key = self.namespace + "incident:" + source
        await self._eval(_INCIDENT_CLOSE, [key], incident, _ttl_ms(ttl_s))

    def _lease_keys(self, key: str) -> list[str]:
        return [self.namespace + "lease:" + key, self.namespace + "settled:" + key]


def _ttl_ms(ttl_s: float) -> int:
    return max(1, int(ttl_s * 1000))


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# KEYS: lease, settled; ARGV: owner, ttl ms. -1 settled, -2 held by owner (now), else the PTTL of
# another owner's lease.
_LEASE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return -2
end
return redis.call('PTTL', KEYS[1])
"""

# KEYS: lease, settled; ARGV: owner, ttl ms
_SETTLE = """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: epoch; ARGV: candidate
_EPOCH = """
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# KEYS: incident; ARGV: candidate, ttl ms. A closed incident is stored as "-<id>".
_INCIDENT_OPEN = """
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 1) ~= '-' then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"""

# KEYS: incident; ARGV: id, ttl ms
_INCIDENT_CLOSE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], '-' .. ARGV[1], 'PX', ARGV[2])
end
return 1
"""
