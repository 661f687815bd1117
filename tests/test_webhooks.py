"""Webhook delivery against real loopback receivers: signing, retries, the outbox, claims."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr

from cookie_supervisor.bull import BullQueue
from cookie_supervisor.config import WebhookSettings
from cookie_supervisor.webhooks import (
    Event,
    WebhookSender,
    event_id_for,
    retry_after,
    sign,
)
from tests.support import ROOT, Receiver, free_port

SECRET = "s3cret-webhook-key-0123456789"
HOOK_TOKEN = "T0KENinTHEpath"  # a Slack-style URL carries its credential in the path


# --- a real receiver -------------------------------------------------------------------------


class Counters:
    """Stands in for metrics.Metrics: the one counter the sender uses, on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhook_deliveries_total = Counter(
            "cookie_supervisor_webhook_deliveries",
            "Webhook deliveries by outcome.",
            ["webhook", "event", "outcome"],
            registry=self.registry,
        )

    def __call__(self, outcome: str, webhook: str = "hook", event: str = "refresh_failed") -> float:
        value = self.registry.get_sample_value(
            "cookie_supervisor_webhook_deliveries_total",
            {"webhook": webhook, "event": event, "outcome": outcome},
        )
        return value or 0.0


class MemoryClaims:
    """bull.BullQueue.claim's answers in memory (no expiry), for tests that are not about Redis."""

    def __init__(self) -> None:
        self.owners: dict[str, str] = {}

    async def __call__(self, key: str, owner: str, ttl: float) -> bool | float:
        held = self.owners.setdefault(key, owner)
        return True if held == owner else ttl


def hook(url: str, **kw: Any) -> WebhookSettings:
    return WebhookSettings(**{"name": "hook", "url": url, **kw})


def event(key: str = "job-1", name: str = "refresh_failed", source: str = "main") -> Event:
    return Event(
        event_id=event_id_for(name, source, key),
        event=name,
        source=source,
        at=1795650067.512,
        reason="bot_detection",
        job_id=key,
        host="dl-01",
        summary=f"{source}: refresh job {key} failed after 3 attempts",
    )


@dataclass
class Rig:
    """Senders made for one test, closed at its end."""

    senders: list[WebhookSender] = field(default_factory=list)
    changes: int = 0

    def sender(
        self,
        hooks: list[WebhookSettings],
        metrics: Counters,
        claim: Callable[[str, str, float], Awaitable[bool | float]] | None = None,
        **kw: Any,
    ) -> WebhookSender:
        def changed() -> None:
            self.changes += 1

        kw.setdefault("backoff_base", 0.01)
        s = WebhookSender(hooks, metrics, claim or MemoryClaims(), changed, **kw)
        self.senders.append(s)
        return s


@pytest.fixture(name="rig")
async def rig_fixture() -> AsyncIterator[Rig]:
    r = Rig()
    yield r
    for s in r.senders:
        await s.aclose()


async def until(predicate: Callable[[], object], timeout: float = 5.0, what: str = "") -> None:
    """Wait on a condition without blocking the loop the sender runs on."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        await asyncio.sleep(0.005)


def readme_verifier() -> Callable[[str, str, bytes], bool]:
    """The receiver-side snippet of the README's Webhooks section, executed as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Webhooks", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    code = next(b for b in blocks if "def verify_signature" in b)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    return namespace["verify_signature"]  # type: ignore[no-any-return]


# --- the event -------------------------------------------------------------------------------


def test_event_ids_come_from_what_happened() -> None:
    a = event_id_for("refresh_completed", "main", "42")
    assert a == event_id_for("refresh_completed", "main", "42")  # another daemon, same id
    assert a != event_id_for("refresh_failed", "main", "42")
    assert a != event_id_for("refresh_completed", "other", "42")
    assert re.fullmatch(r"evt_[0-9a-f]{32}", a)


def test_event_json_schema() -> None:
    body = event().as_json()
    assert body == {
        "event_id": event().event_id,
        "event": "refresh_failed",
        "source": "main",
        "at": "2026-11-25T23:41:07.512Z",
        "at_unix": 1795650067.512,
        "reason": "bot_detection",
        "job_id": "job-1",
        "host": "dl-01",
        "summary": "main: refresh job job-1 failed after 3 attempts",
    }


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        (formatdate(1_000_030, usegmt=True), 30.0),
        (formatdate(999_000, usegmt=True), 0.0),  # in the past: now
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_forms(header: str | None, expected: float | None) -> None:
    assert retry_after(header, 1_000_000.0) == expected


# --- delivery --------------------------------------------------------------------------------


async def test_signature_verifies_with_the_readme_snippet(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers()
    metrics = Counters()
    sender = rig.sender([hook(rx.url(), secret=SecretStr(SECRET))], metrics)
    sender.start()
    sender.submit(event())
    await until(lambda: metrics("delivered") == 1)

    (req,) = rx.requests
    verify = readme_verifier()
    signature = req.headers["X-Cookie-Supervisor-Signature"]
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", signature)
    assert verify(SECRET, signature, req.body)
    assert not verify(SECRET, signature, req.body.replace(b"main", b"evil"))
    assert not verify("another-secret-of-16+bytes", signature, req.body)
    stale = sign(SECRET, req.body, int(time.time()) - 600)
    assert not verify(SECRET, stale, req.body)  # a replay outside the tolerance
    assert req.headers["X-Cookie-Supervisor-Event"] == "refresh_failed"
    assert req.headers["X-Cookie-Supervisor-Event-Id"] == event().event_id
    assert req.headers["Content-Type"] == "application/json"
    assert json.loads(req.body) == event().as_json()
    assert SECRET not in req.body.decode()


async def test_failing_receiver_gets_the_event_once_as_a_success(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers(script=[(500, {}), (503, {}), (502, {})])
    metrics = Counters()
    sender = rig.sender([hook(rx.url())], metrics)
    sender.start()
    sender.submit(event())
    await until(lambda: metrics("delivered") == 1)

    assert len(rx.requests) == 4
    assert {r.headers["X-Cookie-Supervisor-Event-Id"] for r in rx.requests} == {event().event_id}
    assert {r.body for r in rx.requests} == {rx.requests[0].body}
    assert metrics("retried") == 3 and metrics("failed") == 0
    assert sender.outbox_sizes() == {"hook": 0}
    assert rig.changes > 0  # the runtime was told to save the outbox


@pytest.mark.parametrize(
    ("status", "final"),
    [(301, True), (400, True), (404, True), (410, True), (408, False), (429, False)],
)
async def test_4xx_and_redirects_are_final_except_408_and_429(
    rig: Rig, receivers: Callable[..., Receiver], status: int, final: bool
) -> None:
    rx = receivers(script=[(status, {})])
    metrics = Counters()
    sender = rig.sender([hook(rx.url())], metrics)
    sender.start()
    sender.submit(event())
    outcome = "failed" if final else "delivered"
    await until(lambda: metrics(outcome) == 1)
    assert len(rx.requests) == (1 if final else 2)
    assert metrics("retried") == (0 if final else 1)
    assert sender.outbox_sizes() == {"hook": 0}


async def test_retry_after_is_honoured(rig: Rig, receivers: Callable[..., Receiver]) -> None:
    rx = receivers(script=[(503, {"Retry-After": "1"})])
    metrics = Counters()
    sender = rig.sender([hook(rx.url())], metrics)
    sender.start()
    sender.submit(event())
    await until(lambda: metrics("delivered") == 1)
    first, second = rx.requests
    # The backoff alone would have retried within 10 ms.
    assert second.at - first.at >= 0.95


async def test_hanging_receiver_delays_no_other_webhook(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    hanging, healthy = receivers(hang=True), receivers()
    metrics = Counters()
    sender = rig.sender(
        [
            hook(hanging.url(), name="hanging", timeout=1.0),
            hook(healthy.url(), name="healthy"),
        ],
        metrics,
    )
    sender.start()
    for i in range(3):
        sender.submit(event(f"job-{i}"))
    # submit never waits for a receiver: it only queues (the loop has not run, nothing was sent)
    assert sender.outbox_sizes() == {"hanging": 3, "healthy": 3}
    assert not hanging.requests and not healthy.requests
    await until(lambda: metrics("delivered", "healthy") == 3, timeout=2)
    # inside the hanging one's timeout: none of its tries has ended yet
    assert metrics("retried", "hanging") == 0 and metrics("delivered", "hanging") == 0
    assert len(hanging.requests) >= 1
    # The hanging receiver's tries end at its timeout and are retried, not lost.
    await until(lambda: metrics("retried", "hanging") >= 3, timeout=3)
    assert sender.outbox_sizes() == {"hanging": 3, "healthy": 0}


async def test_outbox_survives_a_restart(rig: Rig, receivers: Callable[..., Receiver]) -> None:
    port = free_port()  # nothing listens yet: every try is refused
    hooks = [hook(f"http://127.0.0.1:{port}/hook")]
    claims, metrics = MemoryClaims(), Counters()
    first = rig.sender(hooks, metrics, claims)
    first.start()
    for i in range(5):
        first.submit(event(f"job-{i}"))
    await until(lambda: metrics("retried") >= 5, what="a refused try of each event")
    await first.aclose()  # the daemon is killed
    state = json.loads(json.dumps(first.outbox.to_state()))  # through the state file
    assert len(state) == 5 and all(e["claimed"] and e["attempts"] >= 1 for e in state)

    rx = receivers(port=port)
    second = rig.sender(hooks, Counters(), claims)  # same Redis: the claims are still held
    second.outbox.from_state(state)
    assert second.outbox_sizes() == {"hook": 5}
    second.start()
    await until(lambda: len(rx.requests) == 5 and second.outbox_sizes() == {"hook": 0})
    assert sorted(e["job_id"] for e in rx.events()) == [f"job-{i}" for i in range(5)]


async def test_two_daemons_on_one_redis_deliver_once(
    rig: Rig, receivers: Callable[..., Receiver], redis_url: str
) -> None:
    rx = receivers()
    r = redis.asyncio.Redis.from_url(redis_url)
    queue = BullQueue(r, f"claims-{free_port()}")
    a_metrics, b_metrics = Counters(), Counters()
    a = rig.sender([hook(rx.url())], a_metrics, queue.claim, settle=queue.settle)
    b = rig.sender([hook(rx.url())], b_metrics, queue.claim, settle=queue.settle)
    a.start()
    b.start()
    for sender in (a, b):  # both saw job 42 end
        sender.submit(event("42"))
    await until(lambda: a.outbox_sizes() == b.outbox_sizes() == {"hook": 0})
    await r.aclose()
    assert len(rx.requests) == 1
    assert a_metrics("delivered") + b_metrics("delivered") == 1
    assert a_metrics("failed") + b_metrics("failed") == 0  # losing the claim is not a failure


async def test_redis_down_at_claim_keeps_the_event(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers()
    calls: list[str] = []

    async def flaky_claim(key: str, owner: str, ttl: float) -> bool:
        calls.append(key)
        if len(calls) < 3:
            raise ConnectionError("Redis is down")
        return True

    metrics = Counters()
    sender = rig.sender([hook(rx.url())], metrics, flaky_claim)
    sender.start()
    sender.submit(event())
    await until(lambda: metrics("delivered") == 1)
    assert len(calls) == 3 and calls[0] == f"hook:{event().event_id}"
    assert len(rx.requests) == 1


async def test_bounded_outbox_drops_the_oldest(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers()
    metrics = Counters()
    sender = rig.sender([hook(rx.url(), outbox_limit=3)], metrics)
    for i in range(5):
        sender.submit(event(f"job-{i}"))
    sender.submit(event("job-4"))  # the same event again is not owed twice
    assert sender.outbox_sizes() == {"hook": 3}
    assert metrics("dropped") == 2
    sender.start()
    await until(lambda: metrics("delivered") == 3)
    # the oldest two were dropped; the rest go out concurrently, in any order
    assert sorted(e["job_id"] for e in rx.events()) == ["job-2", "job-3", "job-4"]


async def test_gives_up_after_max_age(rig: Rig, receivers: Callable[..., Receiver]) -> None:
    rx = receivers(script=[(503, {})] * 1000)
    metrics = Counters()
    sender = rig.sender([hook(rx.url(), max_age=0.3)], metrics)
    sender.start()
    sender.submit(event())
    await until(lambda: metrics("failed") == 1)
    assert sender.outbox_sizes() == {"hook": 0}
    assert len(rx.requests) >= 2


async def test_events_reach_only_webhooks_that_want_them_and_slack_gets_text(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    all_rx, slack_rx = receivers(), receivers()
    metrics = Counters()
    sender = rig.sender(
        [
            hook(all_rx.url(), name="all"),
            hook(slack_rx.url(), name="slack", format="slack", events=["file_missing"]),
        ],
        metrics,
    )
    sender.start()
    sender.submit(event("job-1", "refresh_failed"))
    sender.submit(event("main", "file_missing"))
    await until(lambda: len(all_rx.requests) == 2 and len(slack_rx.requests) == 1)
    (slack,) = slack_rx.events()
    assert slack == {
        "text": "main: refresh job main failed after 3 attempts (file_missing, source main, on dl-01)"
    }
    assert "X-Cookie-Supervisor-Signature" not in slack_rx.requests[0].headers  # no secret set


async def test_logs_carry_neither_secret_nor_url_nor_a_long_answer(
    rig: Rig, receivers: Callable[..., Receiver], caplog: pytest.LogCaptureFixture
) -> None:
    rx = receivers(script=[(500, {}), (404, {})])
    metrics = Counters()
    url = rx.url(f"/services/{HOOK_TOKEN}")
    sender = rig.sender([hook(url, secret=SecretStr(SECRET))], metrics)
    with caplog.at_level(logging.DEBUG, logger="cookie_supervisor.webhooks"):
        sender.start()
        sender.submit(event())
        await until(lambda: metrics("failed") == 1)
    text = caplog.text
    assert "HTTP 404: receiver says" in text  # the answer is logged, cut short
    assert "x" * 201 not in text
    assert SECRET not in text and HOOK_TOKEN not in text


async def test_unusable_saved_entries_are_skipped(rig: Rig) -> None:
    sender = rig.sender([hook("http://127.0.0.1:9/hook")], Counters())
    good = {
        "webhook": "hook",
        "event": event().__dict__,
        "first_at": 1.0,
        "next_at": 1.0,
        "attempts": 2,
    }
    sender.outbox.from_state(
        [{"junk": 1}, {**good, "webhook": "removed-since"}, {**good, "event": {"event": "x"}}, good]
    )
    assert sender.outbox_sizes() == {"hook": 1}
    (saved,) = sender.outbox.to_state()
    assert saved["attempts"] == 2 and saved["claimed"] is False


# --- the clock -------------------------------------------------------------------------------


class SteppedWall:
    """The wall clock, with steps an operator (or NTP) would make."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def test_retries_keep_their_rhythm_when_the_wall_clock_steps_an_hour(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    rx = receivers(script=[(503, {})] * 100_000)
    wall, metrics = SteppedWall(), Counters()
    sender = rig.sender([hook(rx.url())], metrics, clock=wall, backoff_cap=0.1)
    sender.start()
    sender.submit(event())
    for step in (-3600.0, +3600.0, +3600.0, -3600.0):
        seen = len(rx.requests)
        await until(lambda seen=seen: len(rx.requests) >= seen + 4, timeout=3, what="tries")
        wall.offset += step
    await until(lambda: len(rx.requests) >= 24, timeout=3, what="tries after the last step")
    gaps = [b.at - a.at for a, b in itertools.pairwise(rx.requests)]
    assert max(gaps) < 1.0, max(gaps)  # no pause the size of the step
    assert metrics("failed") == 0  # max_age (an hour) is an age, not "wall clock minus a date"
    assert sender.outbox_sizes() == {"hook": 1}


async def test_saved_dates_are_converted_and_trusted_no_further_than_the_longest_backoff(
    rig: Rig, receivers: Callable[..., Receiver]
) -> None:
    port = free_port()  # refused until the receiver starts
    wall, claims = SteppedWall(), MemoryClaims()
    first = rig.sender([hook(f"http://127.0.0.1:{port}/hook")], Counters(), claims, clock=wall)
    first.submit(event("job-1"))
    (saved,) = first.outbox.to_state()
    assert abs(saved["first_at"] - wall()) < 1 and abs(saved["next_at"] - wall()) < 1
    await asyncio.sleep(0.05)
    (again,) = first.outbox.to_state()  # saved later: the same first date, the age grown
    assert abs(again["first_at"] - saved["first_at"]) < 0.02
    forged = {**saved, "event": event("job-2").__dict__, "next_at": 253_000_000_000.0}
    future_first = {**saved, "event": event("job-3").__dict__, "first_at": wall() + 86400}
    state = json.loads(json.dumps([saved, forged, future_first]))
    wall.offset -= 3600.0  # the clock set back between the save and the restart

    rx = receivers(port=port)
    metrics = Counters()
    second = rig.sender([hook(rx.url(), max_age=0.5)], metrics, claims, clock=wall, backoff_cap=0.2)
    second.outbox.from_state(state)
    restored = list(second.outbox.entries("hook"))
    assert len(restored) == 3
    for entry in restored:
        assert entry.due - time.monotonic() <= 0.2  # due within one backoff ceiling
        assert entry.born <= time.monotonic()  # an age, never negative (never a longer max_age)
    started = time.monotonic()
    second.start()
    await until(lambda: metrics("delivered") == 3, timeout=2, what="all three delivered")
    assert time.monotonic() - started < 1.0  # not an hour (the step), nor forever (the forgery)
    assert sorted(e["job_id"] for e in rx.events()) == ["job-1", "job-2", "job-3"]
