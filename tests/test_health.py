"""The health gate, `GET /api/cookies/health`: 200 while the cookies are usable, else 503.

Usable: the file exists and is logged in, and the last conclusive validation of this session
passed or none ran yet. The core keeps the answer and since when (`core.track_usable`); the route
reads only that. Core rules as tables and a property; the route through a real daemon.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cookie_supervisor import core
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import FileInspected, TimerFired, Usable
from cookie_supervisor.model import CookieReport
from tests.corekit import CORRUPT, MISSING, T0, Harness, jar
from tests.corekit import settings as source_settings
from tests.support import (
    Daemon,
    cookie_jar,
    daemon_env,
    wait_for,
    write_atomic,
    youtube_daemon,
)

HEALTH = "/api/cookies/health"


def usable(h: Harness) -> Usable | None:
    return h.src.usable


# --- the core --------------------------------------------------------------------------------


def test_not_inspected_then_usable_since_the_first_inspection() -> None:
    h = Harness()
    assert core.unusable_reason(h.src) == core.NOT_INSPECTED and usable(h) is None
    h.file(jar(), at=T0 + 5)
    assert usable(h) == Usable(None, T0 + 5)
    h.file(jar(size=2100), at=T0 + 9)  # the backend rewrote the same session: nothing changes
    assert usable(h) == Usable(None, T0 + 5)


@pytest.mark.parametrize(
    ("report", "reason"),
    [
        (MISSING, "missing_cookies"),
        (CORRUPT, "corrupt_cookies"),
        (jar(None), "logged_out"),
    ],
)
def test_a_file_problem_is_unusable_at_once_and_until_it_ends(report: object, reason: str) -> None:
    h = Harness()
    h.file(jar())
    h.file(report, at=T0 + 10)  # type: ignore[arg-type]
    # No grace: a backend polling the gate should not download with a file that is not there.
    assert usable(h) == Usable(reason, T0 + 10)
    h(TimerFired("main", "grace"), at=T0 + 100)
    assert usable(h) == Usable(reason, T0 + 10)
    h.file(jar(), at=T0 + 200)
    assert usable(h) == Usable(None, T0 + 200)


def test_the_last_conclusive_validation_decides_until_a_new_session() -> None:
    h = Harness()
    h.file(jar())
    h.now = T0 + 60
    h.validated(False, Reason.BOT_DETECTION)
    assert usable(h) == Usable("bot_detection", T0 + 60)
    h.now = T0 + 120
    h.validated(False, Reason.NETWORK_ERROR)  # says nothing about the cookies
    h.validated(False, Reason.IP_FLAGGED, diagnosis=Reason.IP_FLAGGED)  # the address, not them
    assert usable(h) == Usable("bot_detection", T0 + 60)
    h.now = T0 + 180
    h.validated(True)
    assert usable(h) == Usable(None, T0 + 180)
    h.now = T0 + 240
    h.validated(False, Reason.COOKIES_ROTATED)
    assert usable(h) == Usable("cookies_rotated", T0 + 240)
    # A new session: the failed verdict judged other cookies; none ran on these yet.
    h.file(jar("B"), at=T0 + 300)
    assert usable(h) == Usable(None, T0 + 300)
    # A validation that started before the new session arrived and failed still says nothing.
    h.now = T0 + 310
    h.validated(False, Reason.COOKIES_ROTATED, started_at=T0 + 290)
    assert usable(h) == Usable(None, T0 + 300)


def test_an_os_error_reading_the_file_is_no_verdict() -> None:
    h = Harness()
    h.file(jar())
    h.file(CookieReport(path=jar().path, exists=True, os_error="EMFILE"), at=T0 + 50)
    assert usable(h) == Usable(None, T0)


def test_the_worst_source_decides() -> None:
    h = Harness(source_settings("a"), source_settings("b"), source_settings("c"))
    sources = h.state.sources
    assert core.worst_usable(sources) == ("a", Usable(core.NOT_INSPECTED, None))
    for i, name in enumerate(sources):
        h(FileInspected(name, jar()), at=T0 + i)
    # All usable: the one usable for the shortest time, so `since` holds for all.
    assert core.worst_usable(sources) == ("c", Usable(None, T0 + 2))
    h(FileInspected("b", jar(None)), at=T0 + 10)
    h(FileInspected("c", jar(None)), at=T0 + 20)
    assert core.worst_usable(sources) == ("b", Usable("logged_out", T0 + 10))  # unusable longest
    h(FileInspected("c", MISSING), at=T0 + 30)
    assert core.worst_usable(sources) == ("c", Usable("missing_cookies", T0 + 30))  # stronger


EVENTS = st.one_of(
    st.sampled_from(["ok", "missing", "corrupt", "logged_out", "session_b", "emfile"]).map(
        lambda kind: ("file", kind)
    ),
    st.sampled_from(
        [None, Reason.BOT_DETECTION, Reason.COOKIES_ROTATED, Reason.NETWORK_ERROR, Reason.TIMEOUT]
    ).map(lambda reason: ("validation", reason)),
    st.just(("grace", None)),
)
REPORTS = {
    "ok": jar(),
    "missing": MISSING,
    "corrupt": CORRUPT,
    "logged_out": jar(None),
    "session_b": jar("B"),
    "emfile": CookieReport(path=jar().path, exists=True, os_error="EMFILE"),
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0, 600)), max_size=40))
def test_the_kept_answer_is_never_stale(steps: list[tuple[tuple[str, object], float]]) -> None:
    """Whatever happens, the gate's kept answer is the rule applied to the state now, and its
    `since` moves only when the answer changes."""
    h = Harness()
    h.file(jar())
    for (kind, arg), dt in steps:
        h.now += dt
        before = usable(h)
        if kind == "file":
            h.file(REPORTS[str(arg)])
        elif kind == "validation":
            h.validated(arg is None, arg if isinstance(arg, Reason) else None)
        else:
            h(TimerFired("main", "grace"))
        after = usable(h)
        assert after is not None and after.reason == core.unusable_reason(h.src)
        assert before is not None
        expected = before.since if after.reason == before.reason else h.now
        assert after.since == expected


# --- through a real daemon -------------------------------------------------------------------


@pytest.fixture
def two_sources(redis_url: str, jar: Path, tmp_path: Path) -> Iterator[tuple[Daemon, Path]]:
    alt = tmp_path / "alt.txt"
    write_atomic(alt, cookie_jar())
    config = tmp_path / "sources.toml"
    config.write_text(f'[[sources]]\nname = "alt"\ncookies_file = "{alt}"\nvalidation_urls = []\n')
    d = Daemon(env=daemon_env(redis_url, jar, COOKIE_SUPERVISOR_CONFIG=str(config))).start()
    yield d, alt
    d.stop()


def health(d: Daemon, source: str | None = None) -> httpx.Response:
    return d.get(HEALTH, params={"source": source} if source else None)


def test_the_gate_answers_200_then_503_naming_the_worst_source(
    two_sources: tuple[Daemon, Path],
) -> None:
    d, alt = two_sources
    r = health(d)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"healthy", "source", "reason", "since"}
    assert body["healthy"] is True and body["reason"] is None and body["since"] > 0
    assert health(d, "alt").json()["source"] == "alt"

    write_atomic(alt, cookie_jar(login=False))
    wait_for(lambda: health(d).status_code == 503, what="alt logged out")
    body = health(d).json()
    assert body == {**body, "healthy": False, "source": "alt", "reason": "logged_out"}
    assert health(d, "default").status_code == 200  # the other source is fine
    assert health(d, "alt").json()["reason"] == "logged_out"

    alt.unlink()
    wait_for(lambda: health(d).json()["reason"] == "missing_cookies", what="alt missing")
    write_atomic(alt, cookie_jar())
    wait_for(lambda: health(d).status_code == 200, what="alt back")


def test_an_unknown_source_is_404_with_the_reason(two_sources: tuple[Daemon, Path]) -> None:
    d, _ = two_sources
    r = health(d, "nope")
    assert r.status_code == 404 and r.json() == {"success": False, "error": "unknown source 'nope'"}


def test_a_failed_validation_closes_the_gate(redis_url: str, jar: Path) -> None:
    d = youtube_daemon(redis_url, jar, FAKE_WITH_COOKIES="bot", FAKE_ACCOUNT="ll_rotated")
    try:
        wait_for(lambda: health(d).status_code == 503, what="the first validation")
        body = health(d).json()
        assert (body["healthy"], body["reason"], body["source"]) == (
            False,
            "cookies_rotated",
            "default",
        )
        last = d.status()["last_validation"]
        assert body["since"] == pytest.approx(last["at"], abs=1.0)
    finally:
        d.stop()
