"""The runtime in-process: a `Supervisor` wired by construction with fakes for the queue, the
validator and the timers (a real core, a real state file, real metrics), driven by a few events;
what it carries out is asserted: jobs enqueued, timers armed, the state persisted, notifications
handed on."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from cookie_supervisor import core
from cookie_supervisor.bull import BackoffState, JobCounts, Observation, RefreshResult
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import Settings, load_settings
from cookie_supervisor.memory import CoreMemory
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.model import CookieReport, Validation
from cookie_supervisor.state import Saver, StateFile
from cookie_supervisor.supervisor import Sink, Supervisor
from tests.corekit import jar as report

Job = Callable[[], Awaitable[Any]]


class FakeQueue:
    """Bull as the supervisor calls it; every refresh asked for is enqueued, unless Redis is
    made to fail."""

    def __init__(self) -> None:
        self.enqueued: list[tuple[str, dict[str, Any]]] = []
        self.down = False
        self.pending: dict[str, str | None] = {}

    async def request_refresh(
        self, source: str, data: dict[str, Any], *a: Any, **kw: Any
    ) -> RefreshResult:
        if self.down:
            raise RedisConnectionError("Connection refused")
        self.enqueued.append((source, data))
        self.pending[source] = job_id = str(len(self.enqueued))
        return RefreshResult("enqueued", job_id)

    async def observe(self, was_pending: dict[str, str | None], **kw: Any) -> Observation:
        if self.down:
            raise RedisConnectionError("Connection refused")
        names = list(was_pending)
        return Observation(
            epoch="epoch-1",
            counts=JobCounts(len(self.enqueued), 0, 0, 0, 0, 0),
            pending={n: self.pending.get(n) for n in names},
            finished=(),
            window=frozenset(),
            vanished=frozenset(),
            backoffs={n: BackoffState(0, None) for n in names} if kw["backoffs"] else {},
            diagnoses=dict.fromkeys(names),
            progress={},
        )

    async def share_diagnosis(self, *a: Any) -> None:
        return None

    async def reset_backoff(self, *a: Any) -> None:
        return None


class FakeTimers:
    """Timers that never fire by themselves: the test fires what it wants."""

    def __init__(self) -> None:
        self.every_: dict[str, float] = {}
        self.armed: dict[str, float] = {}
        self.jobs: dict[str, Job] = {}

    def every(self, key: str, seconds: float, job: Job, *, jitter: float = 0.0) -> None:
        self.every_[key], self.jobs[key] = seconds, job

    def after(self, key: str, delay: float, job: Job) -> None:
        self.armed[key], self.jobs[key] = delay, job

    def at(self, key: str, when: float, job: Job) -> None:
        self.armed[key], self.jobs[key] = when, job

    def cancel(self, key: str) -> None:
        self.armed.pop(key, None)


class FakeValidator:
    """The jar as the test sets it; a validation's verdict as the test sets it."""

    def __init__(self, jar: CookieReport) -> None:
        self.jar = jar
        self.verdict: tuple[bool, Reason | None] = (True, None)
        self.runs: list[str] = []

    async def read(self, cfg: Any) -> CookieReport:
        return self.jar

    async def validate(
        self, cfg: Any, trigger: str, *, look: Any, diagnose: Any = None
    ) -> Validation:
        self.runs.append(trigger)
        now = self.jar.inspected_at
        await look()  # the report reaches the core on the way, as the real validator does it
        ok, reason = self.verdict
        return Validation(ok, reason, now, now, trigger, url="https://www.youtube.com/watch?v=x")


class Rig:
    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.queue, self.timers = FakeQueue(), FakeTimers()
        self.validator = FakeValidator(report())
        self.notified: list[core.Notify] = []
        self.metrics = Metrics()
        state = core.State.of([s.policy() for s in settings.all_sources()])
        self.state_file = tmp_path / "state" / "state.json"
        self.saver = Saver.load(StateFile(self.state_file.parent), CoreMemory(state))
        self.saver.delay = 0.01

        def notify(n: core.Notify, scope: str) -> bool:
            self.notified.append(n)
            return True  # owed to a receiver: on disk before the step goes on

        self.sup = Supervisor(
            settings,
            cast(Any, self.queue),
            cast(Any, self.timers),
            self.saver,
            cast(Any, self.validator),
            Sink(self.metrics, notify),
        )

    def saved(self) -> dict[str, Any]:
        return json.loads(self.state_file.read_text())  # type: ignore[no-any-return]

    async def settle(self) -> None:
        """Until every background task the effects spawned has ended."""
        for _ in range(200):
            if not len(self.sup.background):
                return
            await asyncio.sleep(0.005)
        raise AssertionError("background tasks still running")


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(tmp_path / "cookies.txt"))
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATION_URLS", "https://www.youtube.com/watch?v=x")
    monkeypatch.setenv("COOKIE_SUPERVISOR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATE_EVERY", "1h")
    return Rig(load_settings(), tmp_path)


async def test_start_polls_inspects_arms_and_validates(rig: Rig) -> None:
    sup = rig.sup
    await sup.start()
    await rig.settle()
    assert sup.started and sup.redis_up and sup.poller.scope == "epoch-1"
    assert rig.timers.every_["queue-poll"] == sup.settings.queue_poll_interval
    assert rig.timers.every_["validate:default"] == 3600.0
    assert rig.validator.runs == ["schedule"]  # the first validation, run by the core's ask
    last = sup.source("default").last_validation
    assert last is not None and last.ok
    assert rig.metrics.validation_runs_total.value("default", "ok") == 1.0
    assert rig.queue.enqueued == []  # healthy cookies: no login spent


async def test_a_refresh_asked_is_enqueued_and_notified_and_saved(rig: Rig) -> None:
    sup = rig.sup
    await sup.start()
    await rig.settle()
    before = len(rig.notified)
    rig.state_file.unlink(missing_ok=True)
    answer = await sup.request("default", "manual", origin="cli")
    assert (answer.state, answer.job_id) == ("enqueued", "1")
    [(source, data)] = rig.queue.enqueued
    assert source == "default" and data["reason"] == "manual" and data["origin"] == "cli"
    assert data["cookies_file"] == str(sup.source_settings["default"].cookies_file)
    assert data["host"] == sup.host and data["requested_at"].endswith("Z")
    assert [n.event for n in rig.notified[before:]] == ["refresh_enqueued"]
    assert rig.state_file.exists()  # owed to a receiver: written before the answer came back
    await sup.poll_queue()
    assert sup.source("default").pending_job == "1"


async def test_a_missing_jar_arms_its_grace_then_is_announced(rig: Rig) -> None:
    sup = rig.sup
    await sup.start()
    await rig.settle()
    # A logged-in session: its rotation is armed as a date on the wall clock, a week out.
    rotation = rig.timers.armed["rotation:default"]
    assert 6 * 86400 < rotation - sup.clock() <= 7 * 86400
    rig.validator.jar = CookieReport(path=rig.validator.jar.path, exists=False)
    await sup.inspect("default")
    await rig.settle()
    assert "rotation:default" not in rig.timers.armed  # no session, nothing to rotate: cancelled
    grace = rig.timers.armed["grace:default"]  # an interval: the writer may still be at it
    assert 59 < grace <= sup.source_settings["default"].missing_grace == 60
    assert "file_missing" not in [n.event for n in rig.notified]
    await rig.timers.jobs["grace:default"]()  # the grace runs out
    await rig.settle()
    assert [n.event for n in rig.notified][-1] == "file_missing"
    assert sup.source("default").problem is Reason.MISSING_COOKIES


async def test_redis_down_owes_the_refresh_and_persists_it(rig: Rig) -> None:
    sup = rig.sup
    await sup.start()
    await rig.settle()
    rig.queue.down = True
    answer = await sup.request("default", "manual", origin="cli")
    assert answer.state == "deferred" and not sup.redis_up
    owed = sup.source("default").owed
    assert owed is not None and owed.reason is Reason.MANUAL
    for _ in range(200):  # the Persist effect: a debounced write (delay 0.01 s here)
        if rig.state_file.exists() and rig.saved()["sources"]["default"]["owed"]:
            break
        await asyncio.sleep(0.01)
    assert rig.saved()["sources"]["default"]["owed"]["reason"] == "manual"
    # Redis back: the next poll sees it, and the owed refresh is paid once.
    rig.queue.down = False
    sup.outage.retry_at = 0.0  # the reconnect backoff is not what this test waits for
    await sup.poll_queue()
    await rig.settle()
    assert [data["reason"] for _, data in rig.queue.enqueued] == ["manual"]
    assert sup.source("default").owed is None
    await sup.stop()
    assert rig.saved()["sources"]["default"]["owed"] is None  # the last write, at stop
