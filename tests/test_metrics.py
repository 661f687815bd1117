"""Gauges are views of the core's state: absent knowledge is an absent sample, never a stale value."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from cookie_supervisor import core
from cookie_supervisor.classify import Reason
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.metrics import Metrics, outbox_gauges, state_gauges
from cookie_supervisor.model import CookieReport
from tests.support import parse_metrics

T0 = 1_800_000_000.0
PATH = Path("/srv/cookies.txt")


def exposed(
    state: core.State, now: float = T0
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    m = Metrics()
    for name in state.sources:
        m.init_source(name)
    m.register(state_gauges(state, lambda: now, "cookie-refresh"))
    return parse_metrics(m.exposition().decode())


def sample(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def state_with(report: CookieReport | None) -> core.State:
    state = core.State.of([SourceSettings(name="main", cookies_file=PATH).policy()])
    if report is not None:
        core.step(state, core.FileInspected("main", report), T0)
    return state


GOOD = CookieReport(
    path=PATH,
    exists=True,
    size=2000,
    mtime=T0 - 60,
    mode=0o600,
    cookies=20,
    login_cookies=("LOGIN_INFO", "SAPISID"),
    logged_in=True,
    login_expires_at=T0 + 86400 * 300,
    fingerprint="A",
)


def test_nothing_known_yet_is_no_sample() -> None:
    s = exposed(state_with(None))
    for name in ("file_present", "file_size_bytes", "logged_in", "validation_success", "redis_up"):
        assert sample(s, f"cookie_supervisor_{name}", source="main") is None, name
    assert sample(s, "cookie_supervisor_redis_up") is None


def test_missing_file_has_no_size_mtime_or_age() -> None:
    s = exposed(state_with(CookieReport(path=PATH, exists=False)))
    assert sample(s, "cookie_supervisor_file_present", source="main") == 0
    for name in ("file_size_bytes", "file_modified_timestamp_seconds", "file_age_seconds"):
        assert sample(s, f"cookie_supervisor_{name}", source="main") is None, name
    assert sample(s, "cookie_supervisor_file_problem", source="main", reason="missing_cookies") == 1


def test_present_file_is_described_and_its_age_derived_at_scrape_time() -> None:
    s = exposed(state_with(GOOD), now=T0)
    assert sample(s, "cookie_supervisor_file_size_bytes", source="main") == 2000
    assert sample(s, "cookie_supervisor_file_age_seconds", source="main") == 60
    assert sample(s, "cookie_supervisor_logged_in", source="main") == 1
    assert not any(name == "cookie_supervisor_file_problem" for name, _ in s)
    later = exposed(state_with(GOOD), now=T0 + 40)
    assert sample(later, "cookie_supervisor_file_age_seconds", source="main") == 100


def test_queue_gauges_vanish_while_redis_is_down() -> None:
    state = state_with(GOOD)
    core.step(state, core.QueueObserved({"main": "7"}, counts={"waiting": 1}), T0)
    up = exposed(state)
    assert sample(up, "cookie_supervisor_refresh_pending", source="main") == 1
    assert sample(up, "cookie_supervisor_queue_jobs", queue="cookie-refresh", state="waiting") == 1
    core.step(state, core.RedisDown("connection refused"), T0 + 1)
    down = exposed(state)
    assert sample(down, "cookie_supervisor_redis_up") == 0
    assert sample(down, "cookie_supervisor_refresh_pending", source="main") is None
    assert not any(name == "cookie_supervisor_queue_jobs" for name, _ in down)


def test_backoff_and_diagnosis_are_absent_when_none() -> None:
    state = state_with(GOOD)
    s = exposed(state)
    assert sample(s, "cookie_supervisor_refresh_consecutive_failures", source="main") == 0
    assert (
        sample(s, "cookie_supervisor_refresh_backoff_until_timestamp_seconds", source="main")
        is None
    )
    core.step(state, core.BackoffObserved("main", 2, T0 + 3600), T0)
    v = core.Validation(
        False, Reason.IP_FLAGGED, T0, T0 + 1, "schedule", diagnosis=Reason.IP_FLAGGED
    )
    core.step(state, core.ValidationFinished("main", v), T0 + 1)
    s = exposed(state, now=T0 + 2)
    assert sample(s, "cookie_supervisor_refresh_consecutive_failures", source="main") == 2
    assert (
        sample(s, "cookie_supervisor_refresh_backoff_until_timestamp_seconds", source="main")
        == T0 + 3600
    )
    assert sample(s, "cookie_supervisor_diagnosis", source="main", diagnosis="ip_flagged") == 1
    past = exposed(state, now=T0 + 3601)
    assert (
        sample(past, "cookie_supervisor_refresh_backoff_until_timestamp_seconds", source="main")
        is None
    )


def test_counters_exist_at_zero_from_the_start() -> None:
    s = exposed(state_with(None))
    for reason in Reason:
        outcome = "enqueued" if reason.fixable else "ignored"
        assert (
            sample(
                s,
                "cookie_supervisor_failure_reports_total",
                source="main",
                reason=reason.value,
                outcome=outcome,
            )
            == 0
        )
        assert (
            sample(s, "cookie_supervisor_validation_runs_total", source="main", result=reason.value)
            == 0
        )
    for verdict in core.VERDICTS:
        assert (
            sample(
                s, "cookie_supervisor_refresh_verifications_total", source="main", result=verdict
            )
            == 0
        )
    assert sample(s, "cookie_supervisor_pending_jobs_lost_total", source="main") == 0


def test_every_exported_family_is_declared() -> None:
    state = state_with(GOOD)
    core.step(state, core.QueueObserved({"main": None}, counts={"waiting": 0}), T0)
    m = Metrics()
    m.init_source("main")
    m.init_webhook("ops", ["refresh_failed"])
    m.register(state_gauges(state, lambda: T0, "cookie-refresh"))
    m.register(outbox_gauges(lambda: {"ops": 2}))
    names = {name for name, _ in parse_metrics(m.exposition().decode())}
    declared = m.names() | {
        h.name + s
        for h in (m.validation_duration_seconds, m.login_session_lifetime_seconds)
        for s in ("_bucket", "_sum", "_count")
    }
    assert names and names <= declared, names - declared
    assert "cookie_supervisor_webhook_outbox" in names


def test_label_values_are_escaped() -> None:
    m = Metrics()
    m.webhook_deliveries_total.labels('we"ird\\name\n', "refresh_failed", "delivered").inc()
    text = m.exposition().decode()
    parsed = parse_metrics(text)
    key = (
        "cookie_supervisor_webhook_deliveries_total",
        frozenset(
            {"webhook": 'we"ird\\name\n', "event": "refresh_failed", "outcome": "delivered"}.items()
        ),
    )
    assert parsed[key] == 1


def test_validation_durations_are_observed() -> None:
    state = state_with(GOOD)
    v = core.Validation(True, None, T0, T0 + 1.5, "schedule")
    m = Metrics()
    m.init_source("main")
    for fx in core.step(state, core.ValidationFinished("main", v), T0 + 2):
        if isinstance(fx, core.Observe):
            getattr(m, fx.metric).observe(fx.source, fx.value)
    s = parse_metrics(m.exposition().decode())
    count = (
        "cookie_supervisor_validation_duration_seconds_count",
        frozenset({"source": "main"}.items()),
    )
    le2 = (
        "cookie_supervisor_validation_duration_seconds_bucket",
        frozenset({"source": "main", "le": "2.0"}.items()),
    )
    le1 = (
        "cookie_supervisor_validation_duration_seconds_bucket",
        frozenset({"source": "main", "le": "1.0"}.items()),
    )
    assert s[count] == 1 and s[le2] == 1 and s[le1] == 0


def test_every_metric_the_core_counts_or_observes_exists() -> None:
    import re

    # every module of the core package
    source = "".join(p.read_text() for p in Path(core.__file__).parent.glob("*.py"))
    named = set(re.findall(r'(?:Count|Observe)\(\s*"(\w+)"', source))
    assert {"refresh_requests_total", "validation_duration_seconds"} <= named  # the scan works
    m = Metrics()
    assert {n for n in named if not hasattr(m, n)} == set()


def test_source_info_names_the_file_once_the_daemon_has_looked() -> None:
    assert sample(exposed(state_with(None)), "cookie_supervisor_source_info", source="main") is None
    s = exposed(state_with(GOOD))
    assert sample(s, "cookie_supervisor_source_info", source="main", cookies_file=str(PATH)) == 1


def test_refresh_job_info_says_what_the_daemon_already_did() -> None:
    state = state_with(GOOD)
    assert not [k for k in exposed(state) if k[0] == "cookie_supervisor_refresh_job_info"]
    src = state.sources["main"]
    src.pending_job, src.pending_reason = "42", Reason.LOGGED_OUT
    labels = {"source": "main", "job_id": "42", "reason": "logged_out", "state": "pending"}
    assert sample(exposed(state), "cookie_supervisor_refresh_job_info", **labels) == 1
    src.pending_job, src.owed = None, core.Owed(Reason.MISSING_COOKIES, T0, "file")
    labels = {"source": "main", "job_id": "", "reason": "missing_cookies", "state": "owed"}
    assert sample(exposed(state), "cookie_supervisor_refresh_job_info", **labels) == 1


def test_rotation_due_is_the_sessions_own_not_the_expiry_renewal() -> None:
    """Login cookies expiring in 12 h on a session first seen 30 min ago: the session is due at
    first seen + rotate_after, not "overdue since" expiry − renew_before (that is the expiring
    alert's business, from login_expiry_timestamp_seconds)."""
    settings = SourceSettings(name="main", cookies_file=PATH, rotate_after=7 * 86400)
    state = core.State.of([settings.policy()])
    core.step(state, core.FileInspected("main", GOOD), T0 - 7200)  # an older session, remembered
    newer = replace(GOOD, login_expires_at=T0 + 12 * 3600, fingerprint="B", mtime=T0 - 1800)
    core.step(state, core.FileInspected("main", newer), T0 - 1800)
    s = exposed(state)
    due = sample(s, "cookie_supervisor_rotation_due_timestamp_seconds", source="main")
    assert due == T0 - 1800 + 7 * 86400
    assert sample(s, "cookie_supervisor_login_expiry_timestamp_seconds", source="main") == (
        T0 + 12 * 3600
    )
