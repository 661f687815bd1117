"""Every metric the daemon exports: name, type, help and labels live here and nowhere else.

Alert rules (alerts/), the Grafana dashboard (grafana/) and the tests rely on these names; renaming
one is a breaking change for operators. Counters are counted where effects are carried out; gauges
are views of the decision core's state, read at scrape time (`render_state`), so absent knowledge
is an absent sample, never a stale value or a zero. Timestamps are the primary truth; ages are
derived at scrape time.

prometheus-client provides the process, platform and GC collectors and defines the format. The
daemon's own families are rendered by `exposition.py` (measured ~120 ms → ~2.5 ms a scrape with
100 sources, README "Performance"). What is read at scrape time is a collector registered with
`Metrics.register` by whoever owns the data (the core's state, the webhook outboxes, the loop's
tasks): nothing is assigned into a `Metrics` from outside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)

from cookie_supervisor import __version__, core, model
from cookie_supervisor.classify import Reason
from cookie_supervisor.exposition import Family, Gauges, Histogram, escape, labels_text

NS = "cookie_supervisor"
FINISH_OUTCOMES = ("completed", "failed")
QUEUE_STATES = ("waiting", "active", "completed", "failed", "delayed", "paused")
DIAGNOSES = (Reason.IP_FLAGGED, Reason.PO_TOKEN_REQUIRED, Reason.ACCOUNT_RESTRICTED)
WEBHOOK_OUTCOMES = ("delivered", "retried", "failed", "dropped")
VALIDATION_OK = "ok"
# Validations are child processes taking from ~0.3 s (local) to minutes (timeout).
VALIDATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
# Exported YouTube sessions live from minutes (used from another IP) to weeks.
SESSION_LIFETIME_BUCKETS = (
    *(300, 900, 1800, 3600, 7200, 14400, 28800, 43200),
    *(86400, 172800, 259200, 432000, 604800, 1209600, 2592000),
)

# `*_created` series double the exposition and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# What is read at scrape time: appends its part of the exposition to `out`.
Collector = Callable[[list[str]], None]


class Metrics:
    """The daemon's metrics: counters it counts, gauges it derives from state at scrape time."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()  # the standard collectors, rendered by the library
        process_collector.ProcessCollector(registry=self.registry)
        platform_collector.PlatformCollector(registry=self.registry)
        gc_collector.GCCollector(registry=self.registry)
        self._families: list[Family] = []
        self.build_labels: dict[str, str] = {
            "version": __version__,
            "revision": "unknown",
            "yt_dlp_version": "unknown",
            "js_runtime": "none",
            "js_runtime_version": "none",
            "js_solver_version": "none",
        }
        self._collectors: list[Collector] = []

        def counter(name: str, doc: str, *labels: str) -> Family:
            return self._add(Family(f"{NS}_{name.removesuffix('_total')}", doc, "counter", labels))

        # The cookie file
        self.file_changes_total = counter(
            "file_changes_total", "Debounced changes of the cookie file seen.", "source"
        )
        self.file_read_errors_total = counter(
            "file_read_errors_total",
            "OS errors reading the cookie file (descriptors, memory, I/O): the daemon's trouble, "
            "never evidence about the cookies.",
            "source",
            "errno",
        )
        self.probe_errors_total = counter(
            "probe_errors_total",
            "OS errors of the daemon preparing or starting a validation probe (disk full, file "
            "size limit, descriptors, I/O): no verdict, never evidence about the cookies.",
            "source",
            "errno",
        )
        # Refreshes
        self.refresh_requests_total = counter(
            "refresh_requests_total",
            "Refresh requests by what became of them.",
            "source",
            "reason",
            "outcome",
        )
        self.refresh_jobs_enqueued_total = counter(
            "refresh_jobs_enqueued_total",
            "Refresh jobs put into the Bull queue.",
            "source",
            "reason",
        )
        self.refresh_jobs_finished_total = counter(
            "refresh_jobs_finished_total",
            "Refresh jobs that reached a final state.",
            "source",
            "outcome",
        )
        self.refresh_verifications_total = counter(
            "refresh_verifications_total",
            "Whether a completed refresh fixed the cookies.",
            "source",
            "result",
        )
        self.pending_jobs_lost_total = counter(
            "pending_jobs_lost_total",
            "Pending refresh jobs that vanished from Redis without finishing.",
            "source",
        )
        self.failure_reports_total = counter(
            "failure_reports_total",
            "Failures reported by the backend (API, journal, log files) by reason and outcome.",
            "source",
            "reason",
            "outcome",
        )
        # Validation
        self.validation_runs_total = counter(
            "validation_runs_total",
            "Validation runs by result (ok or a reason).",
            "source",
            "result",
        )
        self.validation_diagnoses_total = counter(
            "validation_diagnoses_total",
            "Diagnoses found by probing without cookies.",
            "source",
            "diagnosis",
        )
        self.validation_duration_seconds = Histogram(
            f"{NS}_validation_duration_seconds",
            "Wall time of one validation run.",
            VALIDATION_BUCKETS,
        )
        self.login_session_lifetime_seconds = Histogram(
            f"{NS}_login_session_lifetime_seconds",
            "How long login sessions lived: from first seen to seen dead (YouTube cleared it, "
            "the file logged out or expired). Sessions replaced while alive are not counted.",
            SESSION_LIFETIME_BUCKETS,
        )
        # Notifications and passive detection
        self.webhook_deliveries_total = counter(
            "webhook_deliveries_total",
            "Webhook delivery attempts by outcome.",
            "webhook",
            "event",
            "outcome",
        )
        self.report_lines_read_total = counter(
            "report_lines_read_total", "Lines read from the backend's logs.", "source", "input"
        )
        self.report_lines_matched_total = counter(
            "report_lines_matched_total",
            "Lines from the backend's logs that carried a yt-dlp failure.",
            "source",
            "input",
        )
        # HTTP
        self.http_auth_failures_total = counter(
            "http_auth_failures_total",
            "Requests refused for a missing or wrong bearer token (the token is never recorded).",
            "route",
            "reason",
        )
        self.report_input_up = self._add(
            Family(
                f"{NS}_report_input_up",
                "1 while a journal unit or log file of the backend is being followed.",
                "gauge",
                ("source", "input"),
            )
        )

    def register(self, collector: Collector) -> None:
        """Render `collector` in every scrape from now on, after the daemon's own families."""
        self._collectors.append(collector)

    def _add(self, family: Family) -> Family:
        self._families.append(family)
        return family

    def count(self, metric: str, labels: tuple[str, ...]) -> None:
        family: Family = getattr(self, metric)
        family.inc(labels)

    def init_source(self, source: str) -> None:
        """Create every series a source has from the start (so `increase()` sees first events)."""
        self.file_changes_total.touch(source)
        self.pending_jobs_lost_total.touch(source)
        for outcome in FINISH_OUTCOMES:
            self.refresh_jobs_finished_total.touch(source, outcome)
        for verdict in model.VERDICTS:
            self.refresh_verifications_total.touch(source, verdict)
        self.validation_runs_total.touch(source, VALIDATION_OK)
        for reason in Reason:
            self.validation_runs_total.touch(source, reason.value)
            # The outcome a reason first gets: a job for what fresh cookies fix, else nothing.
            outcome = "enqueued" if reason.fixable else "ignored"
            self.refresh_requests_total.touch(source, reason.value, outcome)
            self.failure_reports_total.touch(source, reason.value, outcome)
            if reason.fixable:
                self.refresh_jobs_enqueued_total.touch(source, reason.value)
        for diagnosis in DIAGNOSES:
            self.validation_diagnoses_total.touch(source, diagnosis.value)
        self.validation_duration_seconds.touch(source)
        self.login_session_lifetime_seconds.touch(source)

    def observe(self, metric: str, source: str, value: float) -> None:
        histogram: Histogram = getattr(self, metric)
        histogram.observe(source, value)

    def init_webhook(self, webhook: str, events: Iterable[str]) -> None:
        for event in events:
            for outcome in WEBHOOK_OUTCOMES:
                self.webhook_deliveries_total.touch(webhook, event, outcome)

    def names(self) -> set[str]:
        """Every family name the daemon can export (alerts and the dashboard use only these)."""
        found = {f"{NS}_{name}" for name, _ in _GAUGES}
        found |= {f"{NS}_{n}" for n in ("build_info", "redis_up", "queue_jobs", "webhook_outbox")}
        found.add(f"{NS}_asyncio_tasks")
        found |= {f.name + ("_total" if f.kind == "counter" else "") for f in self._families}
        found.add(self.validation_duration_seconds.name)
        found.add(self.login_session_lifetime_seconds.name)
        for family in self.registry.collect():
            found.add(family.name + ("_total" if family.type == "counter" else ""))
        return found

    def exposition(self) -> bytes:
        out: list[str] = []
        self._render_info(out)
        for family in self._families:
            family.render(out)
        self.validation_duration_seconds.render(out)
        self.login_session_lifetime_seconds.render(out)
        for collector in self._collectors:
            collector(out)
        return "".join(out).encode() + generate_latest(self.registry)

    def _render_info(self, out: list[str]) -> None:
        names = tuple(self.build_labels)
        labels = labels_text(names, tuple(self.build_labels[n] for n in names))
        out.append(
            f"# HELP {NS}_build_info Version of cookie-supervisor and of the yt-dlp it validates "
            f"with.\n# TYPE {NS}_build_info gauge\n{NS}_build_info{labels} 1.0\n"
        )


def _gauges(out: list[str]) -> Gauges:
    return Gauges(out, NS)


def state_gauges(state: core.State, clock: Callable[[], float], queue: str) -> Collector:
    """The gauges of the core's state (below), read at scrape time."""
    return lambda out: render_state(state, clock(), queue, out)


def outbox_gauges(sizes: Callable[[], Mapping[str, int]]) -> Collector:
    """Webhook events waiting per webhook; no family while nothing is configured to wait."""

    def render(out: list[str]) -> None:
        found = sizes()
        if not found:
            return
        g = _gauges(out)
        g.head("webhook_outbox", "Webhook events waiting to be delivered.")
        for webhook, size in found.items():
            g.sample("webhook_outbox", f'{{webhook="{escape(webhook)}"}}', size)

    return render


def task_gauge(count: Callable[[], int]) -> Collector:
    """The event loop's task count (leak watch)."""

    def render(out: list[str]) -> None:
        g = _gauges(out)
        g.head("asyncio_tasks", "Tasks on the daemon's event loop (flat when nothing leaks).")
        g.sample("asyncio_tasks", "", count())

    return render


# --- gauges: views of the decision core's state ------------------------------------------------


_GAUGES: tuple[tuple[str, str], ...] = (
    # Info series (value 1): alert rules join them for labels (`* on (instance, job, source)
    # group_left (cookies_file) cookie_supervisor_source_info`) and annotations query them, so an
    # alert mail names the file and what the daemon already did. A source has them once the
    # daemon has looked at its file: the rules also read their absence as "the daemon does not
    # speak for this source right now" (down, starting) and hold the last known state meanwhile.
    ("source_info", "1 for each configured source, with its cookie file (label cookies_file)."),
    (
        "refresh_job_info",
        "1 for the source's latest refresh job: its id, reason and state "
        "(pending, completed, failed; owed while Redis is away, with no id).",
    ),
    ("file_present", "1 when the cookie file exists."),
    ("file_size_bytes", "Size of the cookie file; no sample while it is missing."),
    (
        "file_modified_timestamp_seconds",
        "Last modification time of the cookie file; no sample while it is missing.",
    ),
    ("file_age_seconds", "Seconds since the cookie file was last modified (at scrape time)."),
    ("file_cookies", "Cookies parsed from the file."),
    ("file_login_cookies", "YouTube login cookies present in the file (by name)."),
    ("file_malformed_lines", "Lines yt-dlp would skip (wrong field count, bad expiry)."),
    ("file_secure_permissions", "1 when the file has no group or other permission bits."),
    ("file_problem", "1 for the cookie file's current offline problem (label reason)."),
    ("login_expiry_timestamp_seconds", "Earliest expiry among the login cookies."),
    ("logged_in", "1 when yt-dlp would treat the jar as logged in (LOGIN_INFO + SAPISID)."),
    (
        "login_session_changed_timestamp_seconds",
        "When the current login session was first seen (survives restarts).",
    ),
    (
        "rotation_due_timestamp_seconds",
        "When the login session is due for its scheduled rotation (first seen + rotate_after, "
        "or + 2/3 of the median session lifetime when sooner); "
        "an expiring login is login_expiry_timestamp_seconds' business.",
    ),
    (
        "login_session_lifetime_median_seconds",
        "Median lifetime of the last 3 login sessions seen to die; none before 3 are known.",
    ),
    ("refresh_pending", "1 while a refresh job is waiting, delayed or active; none without Redis."),
    (
        "refresh_pending_since_timestamp_seconds",
        "When the pending refresh job was created; no sample when none is pending.",
    ),
    (
        "refresh_pending_active",
        "1 while a worker holds the pending refresh job, 0 while it waits for one; no sample "
        "when none is pending.",
    ),
    (
        "refresh_pending_active_since_timestamp_seconds",
        "When a worker took the pending refresh job; no sample unless one holds it.",
    ),
    (
        "refresh_upload_timeout_seconds",
        "The source's upload_timeout: how long a refresh may take to bring new cookies.",
    ),
    ("refresh_owed", "1 while a refresh is owed because Redis was unavailable."),
    ("refresh_success_ratio", "Share of the last 20 finished refresh jobs that completed."),
    ("refresh_last_success_timestamp_seconds", "When a refresh job last completed."),
    ("refresh_last_failure_timestamp_seconds", "When a refresh job last failed for good."),
    ("refresh_consecutive_failures", "Refreshes in a row that did not fix the cookies."),
    (
        "refresh_backoff_until_timestamp_seconds",
        "Automatic refreshes wait until then; no sample when not backing off.",
    ),
    ("validation_success", "1 when the last validation passed."),
    ("validation_last_run_timestamp_seconds", "When the last validation finished."),
    ("validation_last_success_timestamp_seconds", "When a validation last passed."),
    (
        "validation_failure",
        "1 while the last validation failed, with its reason (label reason); none after a pass.",
    ),
    ("diagnosis", "1 while the latest validation's diagnosis stands (label diagnosis)."),
)


def render_state(state: core.State, now: float, queue: str, out: list[str]) -> None:
    """Every gauge, from the core's state. A source with nothing known has no sample."""
    rows: dict[str, list[tuple[str, float]]] = {name: [] for name, _ in _GAUGES}
    for src in state.sources.values():
        _source_rows(src, state.redis_up is True, now, rows)
    g = _gauges(out)
    for name, doc in _GAUGES:
        g.head(name, doc)
        for labels, value in rows[name]:
            g.sample(name, labels, value)
    g.head("redis_up", "1 when Redis answered the last call.")
    if state.redis_up is not None:
        g.sample("redis_up", "", 1.0 if state.redis_up else 0.0)
    g.head("queue_jobs", "Jobs in the Bull queue by state, as getJobCounts(); none without Redis.")
    if state.redis_up and state.counts is not None:
        q = escape(queue)
        for job_state in QUEUE_STATES:
            count = state.counts.get(job_state, 0)
            g.sample("queue_jobs", f'{{queue="{q}",state="{job_state}"}}', count)


def _source_rows(
    src: core.Source, redis_up: bool, now: float, rows: dict[str, list[tuple[str, float]]]
) -> None:
    lbl = f'{{source="{escape(src.name)}"}}'

    def put(name: str, value: float | None, labels: str = lbl) -> None:
        if value is not None:
            rows[name].append((labels, float(value)))

    r = src.report
    if r is not None or src.read_error is not None:
        path = escape(str(src.settings.cookies_file))
        put("source_info", 1, f'{{source="{escape(src.name)}",cookies_file="{path}"}}')
        _refresh_job_row(src, put)
    if r is not None:
        put("file_present", 1 if r.exists else 0)
        put("logged_in", 1 if r.logged_in else 0)
        if r.exists:
            put("file_size_bytes", r.size)
            put("file_modified_timestamp_seconds", r.mtime)
            put("file_age_seconds", max(0.0, now - r.mtime) if r.mtime is not None else None)
            put("file_cookies", r.cookies)
            put("file_login_cookies", len(r.login_cookies))
            put("file_malformed_lines", r.malformed_lines)
        secure = r.secure_permissions
        put("file_secure_permissions", None if secure is None else int(secure))
        put("login_expiry_timestamp_seconds", r.login_expires_at)
    if src.problem is not None:
        put("file_problem", 1, f'{{source="{escape(src.name)}",reason="{src.problem.value}"}}')
    put("login_session_changed_timestamp_seconds", src.session_since)
    put("rotation_due_timestamp_seconds", _scheduled_rotation(src))
    put("login_session_lifetime_median_seconds", core.lifetime_median(src))
    if redis_up:
        put("refresh_pending", 1 if src.pending_job else 0)
        if src.pending_job is not None and (p := src.pending_progress) is not None:
            put("refresh_pending_since_timestamp_seconds", p.created_at)
            put("refresh_pending_active", 0 if p.taken_at is None else 1)
            put("refresh_pending_active_since_timestamp_seconds", p.taken_at)
    put("refresh_upload_timeout_seconds", src.settings.upload_timeout)
    put("refresh_owed", 1 if src.owed else 0)
    if src.history:
        ok = [j.finished_at for j in src.history if j.outcome == "completed"]
        failed = [j.finished_at for j in src.history if j.outcome == "failed"]
        put("refresh_success_ratio", src.success_ratio)
        put("refresh_last_success_timestamp_seconds", max(ok) if ok else None)
        put("refresh_last_failure_timestamp_seconds", max(failed) if failed else None)
    put("refresh_consecutive_failures", src.failures)
    put("refresh_backoff_until_timestamp_seconds", src.backoff_ends(now))
    v = src.last_validation
    if v is not None:
        put("validation_success", 1 if v.ok else 0)
        put("validation_last_run_timestamp_seconds", v.at)
        if not v.ok:
            why = (v.reason or Reason.OTHER).value
            put("validation_failure", 1, f'{{source="{escape(src.name)}",reason="{why}"}}')
    put("validation_last_success_timestamp_seconds", src.validated_ok_at)
    if src.diagnosis is not None:
        diag = src.diagnosis.value
        put("diagnosis", 1, f'{{source="{escape(src.name)}",diagnosis="{diag}"}}')


def _scheduled_rotation(src: core.Source) -> float | None:
    """The session's own due date: a session that just began is not overdue because its login
    cookies expire soon (that is CookieLoginExpiringSoon's, from the expiry itself)."""
    since, every = src.session_since, src.settings.rotate_after
    if src.report is None or not src.report.logged_in or since is None or every <= 0:
        return None
    learned = core.learned_renewal(src)  # 2/3 of how long sessions live, when that is sooner
    return min(since + every, learned) if learned is not None else since + every


def _refresh_job_row(src: core.Source, put: Callable[[str, float | None, str], None]) -> None:
    """What the daemon already did about the source's cookies, for alert mails."""
    if src.pending_job is not None:
        job_id, state = src.pending_job, "pending"
        reason = src.pending_reason.value if src.pending_reason else ""
    elif src.owed is not None:
        job_id, state, reason = "", "owed", src.owed.reason.value
    elif src.history:
        last = src.history[-1]
        job_id, state = last.job_id, last.outcome
        if src.verifying is not None and src.verifying.job_id == job_id:
            state = "verifying"  # completed; the daemon waits for the new cookies to pass
        reason = str(getattr(last, "reason", None) or "")  # as Redis had it: bounded below
    else:
        return
    labels = (
        f'{{source="{escape(src.name)}",job_id="{escape(job_id[:64])}",'
        f'reason="{escape(reason[:64])}",state="{state}"}}'
    )
    put("refresh_job_info", 1, labels)
