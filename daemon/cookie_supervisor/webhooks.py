"""Webhook delivery: the one event schema, signing, a bounded outbox per webhook, retries.

Owns *how* an event reaches a receiver, never *whether* one is due (that is the decision core's).
Delivery is at-least-once and off the critical path: `submit` only appends to an outbox; one
background task sends due entries, each webhook in its own worker, so a hanging receiver delays
nobody else. Receivers drop duplicates by `event_id`, which stays the same on every try and is
derived from what happened (and the queue's epoch), so two daemons that see the same job end make
the same id. A lease in Redis, renewed before every try, makes one of them send it; when that
daemon dies its lease runs out and another one delivers (docs/bull.md §9).

Retries back off exponentially with a floor (half the ceiling, then jitter), whatever a receiver's
`Retry-After` says (`0` or a past date is no reason to hammer it). A receiver in trouble is logged
once when the trouble starts and once when it delivers again; the tries between are counted.

The waits between tries and an event's age (`max_age`) are intervals: in the process they are
measured on the monotonic clock, so a wall clock stepped back an hour delays no retry and one
stepped forward gives up on nothing. Only the state file holds wall-clock dates (a monotonic time
means nothing to the next process); they are converted when saved and restored, and a saved next
try is trusted no further ahead than the backoff's ceiling (a date saved before the clock was set
back must not park an event for the size of the step; a longer Retry-After costs one early try
after a restart, and the receiver says it again).

Signing is the Stripe scheme: `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.
Neither the secret nor a webhook's URL (a Slack URL is a credential) is ever logged; a receiver's
answer is logged at most 200 bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import math
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from cookie_supervisor import __version__
from cookie_supervisor.background import Background
from cookie_supervisor.backoff import backoff_delay
from cookie_supervisor.classify import scrub_tree
from cookie_supervisor.config import WebhookSettings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cookie-Supervisor-Signature"
EVENT_HEADER = "X-Cookie-Supervisor-Event"
EVENT_ID_HEADER = "X-Cookie-Supervisor-Event-Id"
LOGGED_BODY = 200  # bytes of a receiver's answer a log line may carry
RETRY_STATUSES = frozenset({408, 429})
PER_WEBHOOK = 4  # deliveries in flight per webhook: bounded, yet a backlog drains quickly
LEASE_MARGIN = 5.0  # a lease outlives its try (or the wait for the next) by this much
# Asking again for a lease another daemon holds: not sooner than this, and no later than LOOK_MAX
# (when the holder delivers, the event is dropped here by then rather than when its lease ends).
LOOK_AGAIN = 0.5
LOOK_MAX = 2.0
SETTLED_FOR = 86400.0  # a settled event stays settled this long past its max_age

# (key, owner, ttl) -> True: ours now; False: settled elsewhere, drop it; seconds: another
# daemon's lease runs that much longer. Settle: (key, owner, ttl), the event is done with.
Claim = Callable[[str, str, float], Awaitable[bool | float]]
Settle = Callable[[str, str, float], Awaitable[None]]


class _Counter(Protocol):
    def labels(self, *labels: str) -> Any: ...


class WebhookMetrics(Protocol):
    """What the sender counts on: `cookie_supervisor_webhook_deliveries_total`."""

    @property
    def webhook_deliveries_total(self) -> _Counter: ...


# --- the event -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something a person may want to hear about. Never a cookie value, never a token."""

    event_id: str
    event: str  # one of config.WEBHOOK_EVENTS
    source: str
    at: float  # unix seconds
    reason: str | None
    job_id: str | None
    host: str  # the daemon that saw it
    summary: str  # one line for people

    def as_json(self) -> dict[str, Any]:
        """The one JSON schema every receiver gets (format `json`)."""
        iso = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        return {
            "event_id": self.event_id,
            "event": self.event,
            "source": self.source,
            "at": iso.replace("+00:00", "Z"),
            "at_unix": round(self.at, 3),
            "reason": self.reason,
            "job_id": self.job_id,
            "host": self.host,
            "summary": self.summary,
        }

    def slack_text(self) -> str:
        """The one-liner of format `slack` (Slack, Mattermost, Discord's /slack endpoint)."""
        return f"{self.summary} ({self.event}, source {self.source}, on {self.host})"


def event_id_for(event: str, source: str, key: str, scope: str = "") -> str:
    """A stable id from what happened (e.g. the job id) in `scope` (the queue's epoch): every
    daemon on one queue derives the same one; another queue, Redis or a flushed one, another."""
    digest = hashlib.sha256(f"{scope}\x00{event}\x00{source}\x00{key}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def sign(secret: str, body: bytes, t: int) -> str:
    """The signature header's value for `body` sent at unix time `t`."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def webhook_name(hook: WebhookSettings) -> str:
    """The `webhook` label: its name, else its URL's host (never the URL: it may be a secret)."""
    return hook.name or urlsplit(hook.url).hostname or "webhook"


# --- the outbox ------------------------------------------------------------------------------


@dataclass
class Entry:
    """One event owed to one webhook. `born` and `due` are monotonic times of this process (first
    owed, next try): the state file holds them as wall-clock dates (`Outbox.to_state`)."""

    event: Event
    born: float
    due: float
    attempts: int = 0
    # This daemon held the Redis lease at its last try: with Redis away it sends all the same.
    claimed: bool = False
    # Whose lease: random per entry and saved with it, so a restarted daemon resumes its own.
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class Outbox:
    """Per webhook, the events not yet delivered, oldest first and at most `limits[name]`.

    `wall` and `mono` are the clocks the saved dates are converted with; a saved next try is
    trusted at most `longest_wait` seconds ahead."""

    limits: dict[str, int]
    on_change: Callable[[], None] = lambda: None
    on_drop: Callable[[str, Entry], None] = lambda name, entry: None
    wall: Callable[[], float] = time.time
    mono: Callable[[], float] = time.monotonic
    longest_wait: float = 300.0
    _boxes: dict[str, OrderedDict[str, Entry]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._boxes = {name: OrderedDict() for name in self.limits}

    def add(self, name: str, entry: Entry) -> bool:
        """Append; an event already owed to this webhook is not added twice."""
        box = self._boxes[name]
        if entry.event.event_id in box:
            return False
        box[entry.event.event_id] = entry
        while len(box) > self.limits[name]:
            _, oldest = box.popitem(last=False)
            self.on_drop(name, oldest)
        self.on_change()
        return True

    def remove(self, name: str, entry: Entry) -> None:
        if self._boxes[name].pop(entry.event.event_id, None) is not None:
            self.on_change()

    def entries(self, name: str) -> Iterable[Entry]:
        return self._boxes[name].values()

    def holds(self, name: str, entry: Entry) -> bool:
        return self._boxes[name].get(entry.event.event_id) is entry

    def sizes(self) -> dict[str, int]:
        return {name: len(box) for name, box in self._boxes.items()}

    def to_state(self) -> list[dict[str, Any]]:
        """Plain JSON for the state file: the monotonic times as wall-clock dates (`first_at`,
        `next_at`), the age and the wait left measured on the monotonic clock."""
        wall, mono = self.wall(), self.mono()
        return [
            {
                "webhook": name,
                "event": asdict(entry.event),
                "first_at": wall - max(0.0, mono - entry.born),
                "next_at": wall + max(0.0, entry.due - mono),
                "attempts": entry.attempts,
                "claimed": entry.claimed,
                "owner": entry.owner,
            }
            for name, box in self._boxes.items()
            for entry in box.values()
        ]

    def from_state(self, items: list[dict[str, Any]]) -> None:
        """Take back what `to_state` saved; entries of webhooks no longer configured are dropped."""
        for item in items:
            try:
                name = item["webhook"]
                entry = _saved_entry(item, self.wall(), self.mono(), self.longest_wait)
            except (KeyError, TypeError, ValueError):
                log.warning("webhook outbox: skipping an unreadable saved entry")
                continue
            if name in self._boxes:
                self.add(name, entry)
            else:
                log.info(
                    "webhook outbox: dropping an entry for webhook %r, no longer configured", name
                )


_LATEST = 253_370_764_800.0  # 9999-01-01: no saved time of ours lies beyond
_EVENT_TEXTS = ("event_id", "event", "source", "host", "summary")


def _saved_entry(item: dict[str, Any], wall: float, mono: float, longest_wait: float) -> Entry:
    """An outbox entry from the state file, every field checked for type and range (a time that
    is not finite or not between 1970 and 9999 would break the sender later, not here), its dates
    turned into monotonic times: an age of at least 0, a wait of at most `longest_wait` (a date
    saved under a wall clock since set back, or a forged one, parks no event)."""
    raw = item["event"]
    if not isinstance(raw, dict) or set(raw) != {f.name for f in fields(Event)}:
        raise ValueError("not an event")
    if not all(isinstance(raw[k], str) for k in _EVENT_TEXTS):
        raise TypeError("event text of the wrong type")
    if not all(raw[k] is None or isinstance(raw[k], str) for k in ("reason", "job_id")):
        raise TypeError("event text of the wrong type")
    attempts, claimed = item["attempts"], item.get("claimed", False)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 0 <= attempts < 1 << 31:
        raise ValueError("attempts out of range")
    if not isinstance(claimed, bool):
        raise TypeError("claimed is not true or false")
    age = max(0.0, wall - _saved_time(item["first_at"]))
    wait = min(max(0.0, _saved_time(item["next_at"]) - wall), longest_wait)
    return Entry(
        event=Event(**{**raw, "at": _saved_time(raw["at"])}),
        born=mono - age,
        due=mono + wait,
        attempts=attempts,
        claimed=claimed,
        owner=_saved_owner(item.get("owner")),
    )


def _saved_owner(value: Any) -> str:
    """The lease owner word saved with an entry (absent before leases: a new one)."""
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isalnum():
        return value
    return uuid.uuid4().hex


def _saved_time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    try:
        at = float(value)
    except OverflowError:  # an int too large for a float (10**400)
        raise ValueError("not a time between 1970 and 9999") from None
    if not (math.isfinite(at) and 0.0 <= at <= _LATEST):
        raise ValueError("not a time between 1970 and 9999")
    return at


# --- incidents ------------------------------------------------------------------------------

INCIDENT_EVENTS = frozenset({"validation_failed", "validation_recovered"})
INCIDENT_TTL = 86400.0  # an incident nobody joins or closes for this long is forgotten in Redis
OpenIncident = Callable[[str, str, float], Awaitable[str]]
CloseIncident = Callable[[str, str, float], Awaitable[None]]


class Incidents:
    """Which failing-validation incident this daemon announced, per source (kept in the state
    file): `validation_failed` once per incident, shared through Redis by every daemon on it, and
    `validation_recovered` only after a failure that was announced (docs/bull.md §9)."""

    def __init__(
        self,
        sources: Iterable[str],
        open_shared: OpenIncident,
        close_shared: CloseIncident,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.sources = frozenset(sources)
        self.open: dict[str, str] = {}
        self._open_shared, self._close_shared = open_shared, close_shared
        self._on_change = on_change
        self._locks = {name: asyncio.Lock() for name in self.sources}

    async def failed(self, source: str, candidate: str) -> str | None:
        """The incident a failure belongs to, None when it was announced already."""
        async with self._locks[source]:
            if source in self.open:
                return None
            try:
                incident = await self._open_shared(source, candidate, INCIDENT_TTL)
            except Exception as exc:  # Redis away: an incident of our own
                log.debug("incident of %s not shared: %s", source, type(exc).__name__)
                incident = candidate
            self.open[source] = incident or candidate
            self._on_change()
            return self.open[source]

    async def recovered(self, source: str) -> str | None:
        """The incident that ends, None when no failure was announced (nothing to recover)."""
        async with self._locks[source]:
            incident = self.open.pop(source, None)
            if incident is None:
                return None
            self._on_change()
            with contextlib.suppress(Exception):  # its expiry closes it anyway
                await self._close_shared(source, incident, INCIDENT_TTL)
            return incident

    def to_state(self) -> dict[str, str]:
        return dict(self.open)

    def from_state(self, stored: Any) -> None:
        if not isinstance(stored, dict):
            return
        for source, incident in stored.items():
            if source in self.sources and isinstance(incident, str) and 0 < len(incident) <= 128:
                self.open[source] = incident


# --- delivery --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Answer:
    """What one try came to: the outcome and, for a retry, the receiver's wish."""

    outcome: str  # delivered, failed, retry
    detail: str
    retry_after: float | None = None


class WebhookSender:
    """Delivers submitted events to every webhook that wants them, in the background."""

    def __init__(
        self,
        webhooks: list[WebhookSettings],
        metrics: WebhookMetrics,
        claim: Claim,
        on_change: Callable[[], None],
        clock: Callable[[], float] = time.time,
        client: httpx.AsyncClient | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 300.0,
        settle: Settle | None = None,
        lease_margin: float = LEASE_MARGIN,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.webhooks = {webhook_name(h): h for h in webhooks}
        self.metrics = metrics
        self.claim = claim
        self.settle = settle
        self.lease_margin = lease_margin
        # Failed tries since a webhook last delivered: the first is logged, the rest counted.
        self._trouble = dict.fromkeys(self.webhooks, 0)
        self.clock = clock  # dates: the signature's timestamp, a Retry-After date
        self.mono = mono  # intervals: the waits between tries, an event's age
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self._on_change = on_change
        self._own_client = client is None
        # Redirects are not followed: a receiver that moved must be reconfigured, not guessed.
        self.client = client or httpx.AsyncClient(
            headers={"User-Agent": f"cookie-supervisor/{__version__}"}, follow_redirects=False
        )
        self._wake = {name: asyncio.Event() for name in self.webhooks}
        self._in_flight: dict[str, set[str]] = {name: set() for name in self.webhooks}
        self._background = Background()  # the sender's one loop (see `start`)
        limits = {name: h.outbox_limit for name, h in self.webhooks.items()}
        self.outbox = Outbox(
            limits,
            on_change=self._changed,
            on_drop=self._dropped,
            wall=clock,
            mono=mono,
            longest_wait=backoff_cap,
        )

    # --- the runtime's side ------------------------------------------------------------------

    def submit(self, event: Event) -> None:
        """Owe `event` to every webhook whose `events` include it. Never blocks, never raises."""
        try:
            now = self.mono()
            for name, hook in self.webhooks.items():
                if event.event in hook.events:
                    self.outbox.add(name, Entry(event, born=now, due=now))
        except Exception:  # a notification must never break the decision that caused it
            log.exception("webhook: could not queue event %s", event.event)

    def outbox_sizes(self) -> dict[str, int]:
        return self.outbox.sizes()

    def start(self) -> None:
        if not self._background and self.webhooks:
            self._background.spawn(self._run(), name="webhooks")

    async def aclose(self) -> None:
        """Stop sending; what is still owed stays in the outbox (and the state file)."""
        await self._background.aclose()
        if self._own_client:
            await self.client.aclose()

    # --- the background task -----------------------------------------------------------------

    async def _run(self) -> None:
        await asyncio.gather(*(self._worker(name) for name in self.webhooks))

    async def _worker(self, name: str) -> None:
        wake = self._wake[name]
        while True:
            wake.clear()  # before looking: a submit from here on wakes the wait below
            now = self.mono()
            due = self._due(name, now)
            if due:
                await asyncio.gather(*(self._deliver(name, e) for e in due))
                continue
            nexts = [e.due for e in self.outbox.entries(name)]
            timeout = max(0.0, min(nexts) - now) if nexts else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)

    def _due(self, name: str, now: float) -> list[Entry]:
        due: list[Entry] = []
        for entry in self.outbox.entries(name):
            if len(due) >= PER_WEBHOOK:
                break
            if entry.due <= now and entry.event.event_id not in self._in_flight[name]:
                due.append(entry)
        return due

    async def _deliver(self, name: str, entry: Entry) -> None:
        hook = self.webhooks[name]
        event = entry.event
        self._in_flight[name].add(event.event_id)
        try:
            if not await self._lease(name, entry, hook.timeout + self.lease_margin):
                return
            if self.mono() - entry.born >= hook.max_age:
                await self._settle(name, entry)
                return self._finish(name, entry, "failed", f"older than max_age {hook.max_age}s")
            answer = await self._send(hook, event)
            if answer.outcome != "retry":
                await self._settle(name, entry)
                return self._finish(name, entry, answer.outcome, answer.detail)
            delay = self._retry(name, entry, answer)
            if delay is None:
                await self._settle(name, entry)
            else:  # hold the lease through the wait: nobody else tries meanwhile
                await self._lease(name, entry, delay + hook.timeout + self.lease_margin)
        except Exception:  # a bug here must cost one try, never the worker
            log.exception("webhook %s: delivery of %s broke", name, event.event_id)
            self._retry(name, entry, _Answer("retry", "internal error"))
        finally:
            self._in_flight[name].discard(event.event_id)

    async def _lease(self, name: str, entry: Entry, ttl: float) -> bool:
        """Take or renew the lease on sending `entry`; False: not ours to send now."""
        key = f"{name}:{entry.event.event_id}"
        try:
            got = await self.claim(key, entry.owner, ttl)
        except Exception as exc:
            if entry.claimed:  # ours at the last try: Redis away is no reason to stop
                return True
            log.debug("webhook %s: cannot claim %s (%s)", name, key, type(exc).__name__)
            entry.due = self.mono() + self._backoff(entry.attempts + 1)
            self._changed()
            return False
        if got is True:
            if not entry.claimed:
                entry.claimed = True
                self._changed()
            return True
        if got is False:  # another daemon delivered it (or gave up): not a failure of ours
            log.debug("webhook %s: %s settled by another daemon", name, entry.event.event_id)
            self.outbox.remove(name, entry)
            return False
        # Another daemon's lease: keep the event, and ask again when that lease runs out.
        entry.claimed = False
        entry.due = self.mono() + min(max(float(got), LOOK_AGAIN), LOOK_MAX)
        self._changed()
        return False

    async def _settle(self, name: str, entry: Entry) -> None:
        if self.settle is None:
            return
        hook = self.webhooks[name]
        with contextlib.suppress(Exception):  # the lease runs out by itself
            await self.settle(
                f"{name}:{entry.event.event_id}", entry.owner, hook.max_age + SETTLED_FOR
            )

    async def _send(self, hook: WebhookSettings, event: Event) -> _Answer:
        body = _body(hook, event)
        headers = {
            "Content-Type": "application/json",
            EVENT_HEADER: event.event,
            EVENT_ID_HEADER: event.event_id,
        }
        if hook.secret is not None:
            headers[SIGNATURE_HEADER] = sign(
                hook.secret.get_secret_value(), body, int(self.clock())
            )
        try:
            # httpx's timeout is per phase; this bounds the whole try, slow-drip answers included.
            async with asyncio.timeout(hook.timeout):
                req = self.client.build_request(
                    "POST", hook.url, content=body, headers=headers, timeout=hook.timeout
                )
                response = await self.client.send(req, stream=True)
                try:
                    head = await _head(response, LOGGED_BODY)
                finally:
                    await response.aclose()
        except (TimeoutError, httpx.TimeoutException):
            return _Answer("retry", f"no answer within {hook.timeout}s")
        except httpx.TransportError as exc:
            return _Answer("retry", f"connection failed: {type(exc).__name__}")
        return _judge(response, head, self.clock())

    def _retry(self, name: str, entry: Entry, answer: _Answer) -> float | None:
        """Schedule the next try; its delay, or None when there is none (given up, dropped)."""
        hook = self.webhooks[name]
        if not self.outbox.holds(name, entry):
            return None  # dropped from a full outbox meanwhile
        entry.attempts += 1
        now = self.mono()
        # The backoff is the floor: a Retry-After of 0 or a past date must not make a tight loop.
        delay = max(answer.retry_after or 0.0, self._backoff(entry.attempts))
        if now + delay - entry.born >= hook.max_age:
            self._finish(name, entry, "failed", f"{answer.detail}; max_age reached")
            return None
        entry.due = now + delay
        self.metrics.webhook_deliveries_total.labels(name, entry.event.event, "retried").inc()
        self._trouble[name] += 1
        first = self._trouble[name] == 1
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "webhook %s: %s try %d failed (%s); next in %.1fs%s",
            name,
            entry.event.event_id,
            entry.attempts,
            answer.detail,
            delay,
            "; further failed tries are counted, not logged, until it delivers again"
            if first
            else "",
        )
        self._changed()
        return delay

    def _finish(self, name: str, entry: Entry, outcome: str, detail: str) -> None:
        self.outbox.remove(name, entry)
        self.metrics.webhook_deliveries_total.labels(name, entry.event.event, outcome).inc()
        failed_before = self._trouble[name]
        if outcome == "delivered":
            self._trouble[name] = 0
            level = logging.INFO
            note = f"; delivering again after {failed_before} failed tries" if failed_before else ""
        else:
            self._trouble[name] += 1
            level = logging.WARNING if failed_before == 0 else logging.DEBUG
            note = ""
        log.log(
            level,
            "webhook %s: %s %s %s (%s)%s",
            name,
            entry.event.event,
            entry.event.event_id,
            outcome,
            detail,
            note,
        )

    def _backoff(self, attempts: int) -> float:
        """Exponential with equal jitter: at least half the ceiling (a floor however the
        receiver answers), the rest random so daemons and events that failed together spread."""
        ceiling = backoff_delay(max(attempts, 1), self.backoff_base, self.backoff_cap)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _changed(self) -> None:
        for wake in self._wake.values():
            wake.set()
        try:
            self._on_change()
        except Exception:
            log.exception("webhook outbox: on_change failed")

    def _dropped(self, name: str, entry: Entry) -> None:
        self.metrics.webhook_deliveries_total.labels(name, entry.event.event, "dropped").inc()
        log.warning(
            "webhook %s: outbox full, dropped %s %s", name, entry.event.event, entry.event.event_id
        )


def _body(hook: WebhookSettings, event: Event) -> bytes:
    payload = event.as_json() if hook.format == "json" else {"text": event.slack_text()}
    payload = scrub_tree(payload)  # the one redaction, as on every other way out
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


async def _head(response: httpx.Response, limit: int) -> bytes:
    """The first `limit` bytes of the answer; the rest is never read (it may be huge)."""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= limit:
            break
    return head[:limit]


def _judge(response: httpx.Response, head: bytes, now: float) -> _Answer:
    status = response.status_code
    text = head.decode("utf-8", "replace").replace("\n", " ")
    detail = f"HTTP {status}" + (f": {text}" if text and not 200 <= status < 300 else "")
    if 200 <= status < 300:
        return _Answer("delivered", detail)
    if status < 500 and status not in RETRY_STATUSES:  # 4xx; 3xx too: redirects aren't followed
        return _Answer("failed", detail)
    return _Answer("retry", detail, retry_after(response.headers.get("retry-after"), now))


def retry_after(value: str | None, now: float) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)
