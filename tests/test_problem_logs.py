"""Log levels that mean something: a problem that starts is one WARNING line, its end one INFO
line; while it stands, seeing it again is counted (the end line's `repeats`), not logged.

A property test drives the decision core with any sequence of file reports, grace timers,
validations, backoff changes and Redis outages; a black-box test reads the real daemon's log.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cookie_supervisor import core
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.model import CookieReport
from tests.support import (
    ROOT,
    Daemon,
    NodeProcess,
    RedisServer,
    cookie_jar,
    daemon_env,
    source_config,
    wait_for,
    write_atomic,
    youtube_daemon,
)

FILE_CHANGES = "cookie_supervisor_file_changes_total"
T0 = 1_800_000_000.0
PATH = Path("/srv/cookies.txt")
GOOD = CookieReport(
    path=PATH,
    exists=True,
    size=2000,
    mtime=T0,
    mode=0o600,
    cookies=20,
    login_cookies=("LOGIN_INFO", "SAPISID"),
    logged_in=True,
    fingerprint="A",
    login_expires_at=T0 + 400 * 86400,
)
REPORTS = {
    "good": GOOD,
    "new_session": replace(GOOD, fingerprint="B", size=2100),
    "missing": CookieReport(path=PATH, exists=False),
    "logged_out": replace(GOOD, logged_in=False, fingerprint=None, login_cookies=("SAPISID",)),
    "corrupt": CookieReport(path=PATH, exists=True, size=10, error="not a Netscape cookie file"),
    "directory": CookieReport(path=PATH, exists=True, file_type="directory"),
    "denied": CookieReport(path=PATH, exists=True, denied=True),
    "emfile": CookieReport(path=PATH, exists=True, os_error="EMFILE"),
}
# One-off events, not standing problems: a WARNING each is right.
ONE_OFF_WARNINGS = {"pending refresh job vanished from Redis"}


def validation(ok: bool, reason: Reason | None, at: float) -> core.Validation:
    return core.Validation(ok, reason, at - 1, at, "schedule", message="", offline=False)


events = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(sorted(REPORTS))),
    st.tuples(st.just("grace"), st.none()),
    st.tuples(
        st.just("validation"),
        st.sampled_from([None, Reason.BOT_DETECTION, Reason.NETWORK_ERROR, Reason.LOGGED_OUT]),
    ),
    st.tuples(st.just("backoff"), st.integers(0, 4)),
    st.tuples(st.just("redis_down"), st.none()),
    st.tuples(st.just("queue"), st.none()),
)


def event_of(kind: str, arg: Any, now: float) -> core.Event:
    match kind:
        case "file":
            return core.FileInspected("main", REPORTS[arg])
        case "grace":
            return core.TimerFired("main", "grace")
        case "validation":
            return core.ValidationFinished("main", validation(arg is None, arg, now))
        case "backoff":
            return core.BackoffObserved("main", arg, now + 600 if arg else None)
        case "redis_down":
            return core.RedisDown("connection refused")
        case _:
            return core.QueueObserved({"main": None})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(events, st.floats(0, 120)), max_size=40))
def test_each_problem_warns_once_when_it_starts_and_informs_once_when_it_ends(
    steps: list[tuple[tuple[str, Any], float]],
) -> None:
    cfg = SourceSettings(name="main", cookies_file=PATH, missing_grace=30, corrupt_grace=30)
    state = core.State.of([cfg.policy()])
    state.redis_up = True
    now = T0
    open_: dict[str, bool] = {}
    for (kind, arg), dt in steps:
        now += dt
        for fx in core.step(state, event_of(kind, arg, now), now):
            if not isinstance(fx, core.Log) or fx.level < logging.INFO:
                continue
            problem = fx.fields.get("problem")
            if fx.level >= logging.WARNING:
                # every warning is a problem starting (or a one-off event), never a repeat
                if problem is None:
                    assert fx.message in ONE_OFF_WARNINGS, fx
                    continue
                # the daemon's own read errors are ERROR, every other problem WARNING
                assert fx.level == (logging.ERROR if problem == "read_error" else logging.WARNING)
                assert not open_.get(problem), f"second WARNING for standing {problem}: {fx}"
                open_[problem] = True
            elif problem is not None:
                assert fx.message.endswith(": ended"), fx
                assert open_.get(problem), f"an end without a start: {fx}"
                assert fx.fields["repeats"] >= 0 and fx.fields["lasted"] >= 0
                open_[problem] = False
    src = state.sources["main"]
    # what the log says stands is what stands
    warned = {k for k, v in open_.items() if v and k != "redis_down"}
    if src.read_error is None:
        assert warned == set(core.standing(src, now)), (warned, core.standing(src, now))
    else:
        assert "read_error" in warned
    assert open_.get("redis_down", False) == (state.redis_up is False)


def test_repeats_are_counted_in_the_end_line() -> None:
    cfg = SourceSettings(name="main", cookies_file=PATH, missing_grace=0)
    state = core.State.of([cfg.policy()])
    state.redis_up = True
    lines: list[core.Log] = []
    for i, report in enumerate(["missing", "missing", "missing", "missing", "good"]):
        fx = core.step(state, core.FileInspected("main", REPORTS[report]), T0 + i)
        lines += [f for f in fx if isinstance(f, core.Log) and f.fields.get("problem")]
    assert [(x.level, x.message) for x in lines] == [
        (logging.WARNING, "cookie file missing"),
        (logging.INFO, "cookie file missing: ended"),
    ]
    assert lines[0].fields["path"] == str(PATH)
    assert lines[1].fields["repeats"] == 3 and lines[1].fields["lasted"] == 4


# --- the real daemon's log ----------------------------------------------------------------------


def entries(d: Daemon) -> list[dict[str, Any]]:
    out = []
    for line in d.log().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def warnings_of(d: Daemon) -> list[dict[str, Any]]:
    return [e for e in entries(d) if e["level"] in ("warning", "error", "critical")]


def problem_lines(d: Daemon, problem: str) -> list[tuple[str, str]]:
    return [(e["level"], e["msg"]) for e in entries(d) if e.get("problem") == problem]


def test_the_daemon_warns_once_per_problem_and_tells_when_it_ends(tmp_path: Path) -> None:
    redis = RedisServer().start()  # a private one: this test stops it
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    cfg = source_config(
        tmp_path / "s.toml",
        jar,
        missing_grace="0.5s",
        logged_out_confirm="0.5s",
        refresh_cooldown="0",
    )
    env = daemon_env(redis.url, jar, COOKIE_SUPERVISOR_LOG_FORMAT="json")
    env.pop("YT_DLP_COOKIES_FILE")
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    try:
        assert warnings_of(d) == []

        def see_again(times: int) -> None:
            for _ in range(times):  # each validation inspects the file: the problem seen again
                assert d.post("/api/cookies/validate").status_code == 200

        # the jar goes missing past its grace, is seen again three times, and comes back
        jar.unlink()
        wait_for(lambda: problem_lines(d, "missing_cookies"), timeout=10, what="missing warning")
        see_again(3)
        write_atomic(jar, cookie_jar())
        ended = ("info", "cookie file missing: ended")
        wait_for(lambda: ended in problem_lines(d, "missing_cookies"), timeout=10, what="end")
        assert problem_lines(d, "missing_cookies") == [("warning", "cookie file missing"), ended]
        end = next(e for e in entries(d) if e["msg"] == "cookie file missing: ended")
        assert end["repeats"] >= 3 and end["source"] == "default"

        # logged out, then a directory at the path, then a good jar again
        write_atomic(jar, cookie_jar(login=False))
        wait_for(lambda: problem_lines(d, "logged_out"), timeout=10, what="logged-out warning")
        see_again(2)
        jar.unlink()
        jar.mkdir()
        wait_for(lambda: problem_lines(d, "not_a_file"), timeout=10, what="not-a-file warning")
        see_again(2)
        jar.rmdir()
        write_atomic(jar, cookie_jar())
        back = ("info", "cookie path is not a regular file: ended")
        wait_for(lambda: back in problem_lines(d, "not_a_file"), timeout=10, what="dir gone")
        assert problem_lines(d, "logged_out") == [
            ("warning", "cookies logged out"),
            ("info", "cookies logged out: ended"),
        ]
        assert problem_lines(d, "not_a_file") == [
            ("warning", "cookie path is not a regular file"),
            back,
        ]

        # Redis goes away for a while (many failed polls) and returns
        redis.stop()
        wait_for(lambda: problem_lines(d, "redis_down"), timeout=10, what="redis warning")
        wait_for(lambda: d.metric("cookie_supervisor_redis_up") == 0, timeout=10, what="redis_up 0")
        redis.start()
        wait_for(lambda: len(problem_lines(d, "redis_down")) == 2, timeout=20, what="redis back")
        assert problem_lines(d, "redis_down") == [
            ("warning", "redis unavailable"),
            ("info", "redis unavailable: ended"),
        ]
        # Nothing else reached the warning level: every line there is one problem starting,
        # and one event: this Redis restarted empty, so the refresh job still pending (no
        # extractor runs here) vanished — said once, as it happened.
        assert [w["msg"] for w in warnings_of(d)] == [
            "cookie file missing",
            "cookies logged out",
            "cookie path is not a regular file",
            "redis unavailable",
            "pending refresh job vanished from Redis",
        ]
    finally:
        d.stop()
        redis.cleanup()
        if jar.is_dir():
            shutil.rmtree(jar)


WRAPPER = """import os, sys
scenario = open({scenario!r}).read().strip()
os.execv(sys.executable, [sys.executable, {fake!r}, scenario, *sys.argv[1:]])
"""


def test_a_failing_validation_warns_once_and_its_recovery_is_info(
    redis_url: str, tmp_path: Path
) -> None:
    """yt-dlp (the stand-in printing its exact texts) is rate limited four validations in a row,
    then passes: one WARNING with the reason, the repeats in the INFO line that ends it."""
    scenario = tmp_path / "scenario"
    scenario.write_text("ratelimit")
    fake = ROOT / "tests" / "fakes" / "fake_ytdlp.py"
    wrapper = tmp_path / "ytdlp.py"
    wrapper.write_text(WRAPPER.format(scenario=str(scenario), fake=str(fake)))
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    env = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_LOG_FORMAT="json",
        COOKIE_SUPERVISOR_VALIDATION_URLS="https://www.youtube.com/watch?v=jNQXAC9IVRw",
        COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
        COOKIE_SUPERVISOR_YT_DLP_COMMAND=f"{sys.executable},{wrapper}",
        COOKIE_SUPERVISOR_JS_RUNTIME="node",
    )
    d = Daemon(env=env).start()
    try:
        # the validation at start fails first: the WARNING; three more are repeats
        wait_for(lambda: problem_lines(d, "validation_failing"), what="the warning")
        results = [d.post("/api/cookies/validate").json() for _ in range(3)]
        assert [r["ok"] for r in results] == [False] * 3, results
        scenario.write_text("ok")
        assert d.post("/api/cookies/validate").json()["ok"] is True
        ended = ("info", "validation failing: ended")
        wait_for(lambda: ended in problem_lines(d, "validation_failing"), what="the end line")
        assert problem_lines(d, "validation_failing") == [
            ("warning", "validation failing"),
            ended,
        ]
        start = next(e for e in entries(d) if e["msg"] == "validation failing")
        end = next(e for e in entries(d) if e["msg"] == "validation failing: ended")
        assert start["reason"] == results[0]["reason"] and start["detail"]
        assert end["repeats"] == 3
        # (the stand-in yt-dlp has no challenge solver: the start-up check says so, once)
        warned = [w["msg"] for w in warnings_of(d) if "JS challenges" not in w["msg"]]
        assert warned == ["validation failing"]
        # each failed run is still there for whoever looks, at INFO once, then DEBUG (not shown)
        failed = [e for e in entries(d) if e["msg"] == "validation failed"]
        assert [e["level"] for e in failed] == ["info"]
    finally:
        d.stop()


def test_refreshes_that_do_not_help_warn_once(redis_url: str, jar: Path) -> None:
    """A real bull worker whose every job fails: the second failure in a row is the problem's
    WARNING (each job's own outcome is INFO); a passing validation ends it with an INFO line."""
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "FAIL_ATTEMPTS": "99"})
    # Validations look online (the stand-in): an offline-only pass resets no backoff (N2).
    d = youtube_daemon(
        redis_url, jar, COOKIE_SUPERVISOR_LOG_FORMAT="json", COOKIE_SUPERVISOR_JOB_ATTEMPTS="1"
    )
    try:
        for n in (1, 2, 3):
            body = {"reason": "manual", "force": True}
            assert d.post("/api/cookies/trigger-refresh", json=body).json()["triggered"]
            worker.wait("failed", count=n)
            wait_for(
                lambda n=n: len([e for e in entries(d) if e["msg"] == "refresh job failed"]) == n,
                what=f"failure {n} seen by the daemon",
            )
        wait_for(lambda: problem_lines(d, "refresh_ineffective"), what="the warning")
        # The operator uploads a new session by hand; a validation that passes on it ends the
        # spell. (The jar's first session may already have reset the count once, if a validation
        # passed on it between two failures: it does not reset it twice - D14.)
        seen = d.metric(FILE_CHANGES, source="default") or 0.0
        write_atomic(jar, cookie_jar(mark="OperatorUpload"))
        wait_for(lambda: (d.metric(FILE_CHANGES, source="default") or 0.0) > seen, what="upload")
        assert d.post("/api/cookies/validate").json()["ok"] is True
        ended = ("info", "refreshes do not fix the cookies: ended")
        wait_for(lambda: ended in problem_lines(d, "refresh_ineffective"), what="the end line")
        assert problem_lines(d, "refresh_ineffective") == [
            ("warning", "refreshes do not fix the cookies"),
            ended,
        ]
        start = next(e for e in entries(d) if e.get("problem") == "refresh_ineffective")
        assert start["failures"] == 2
        assert [w["msg"] for w in warnings_of(d) if "JS challenges" not in w["msg"]] == [
            "refreshes do not fix the cookies"
        ]
        failed = [e["level"] for e in entries(d) if e["msg"] == "refresh job failed"]
        assert failed == ["info"] * 3
    finally:
        d.stop()
        worker.stop()
