"""Every metric the daemon exports: name, type, help and labels live here and nowhere else.

Alert rules (alerts/), the Grafana dashboard (grafana/) and the tests rely on these names; renaming
one is a breaking change for operators. Timestamps are the primary truth; the one age gauge is
derived at scrape time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from cookie_supervisor import __version__
from cookie_supervisor.classify import Reason

NS = "cookie_supervisor"
REQUEST_OUTCOMES = ("enqueued", "coalesced", "cooldown", "deferred")
FINISH_OUTCOMES = ("completed", "failed")
VERIFICATION_RESULTS = ("verified", "still_failing", "no_upload")
QUEUE_STATES = ("waiting", "active", "completed", "failed", "delayed", "paused")
VALIDATION_OK = "ok"
# Validations are child processes taking from ~0.3 s (local) to minutes (timeout).
VALIDATION_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)

# `*_created` series double the exposition and nothing here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """The daemon's collectors on a registry of its own (one daemon, one registry)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        process_collector.ProcessCollector(registry=r)
        platform_collector.PlatformCollector(registry=r)
        gc_collector.GCCollector(registry=r)

        def gauge(name: str, doc: str, labels: Iterable[str] = ("source",)) -> Gauge:
            return Gauge(f"{NS}_{name}", doc, list(labels), registry=r)

        def counter(name: str, doc: str, labels: Iterable[str] = ("source",)) -> Counter:
            return Counter(f"{NS}_{name}", doc, list(labels), registry=r)

        Info(f"{NS}_build", "Version of cookie-supervisor.", registry=r).info(
            {"version": __version__}
        )

        # Cookie file (issue: backbone)
        self.file_present = gauge("file_present", "1 when the cookie file exists and is readable.")
        self.file_size_bytes = gauge("file_size_bytes", "Size of the cookie file.")
        self.file_modified_timestamp_seconds = gauge(
            "file_modified_timestamp_seconds", "Last modification time of the cookie file."
        )
        self._mtimes: dict[str, Callable[[], float | None]] = {}
        r.register(_AgeCollector(self._mtimes))
        self.file_cookies = gauge("file_cookies", "Cookies parsed from the file.")
        self.file_login_cookies = gauge(
            "file_login_cookies", "YouTube login cookies present in the file (by name)."
        )
        self.file_secure_permissions = gauge(
            "file_secure_permissions", "1 when the file has no group or other permission bits."
        )
        self.file_malformed_lines = gauge(
            "file_malformed_lines", "Lines yt-dlp would skip (wrong field count, bad expiry)."
        )
        self.file_changes_total = counter(
            "file_changes_total", "Debounced changes of the cookie file seen."
        )
        self.login_expiry_timestamp_seconds = gauge(
            "login_expiry_timestamp_seconds", "Earliest expiry among the login cookies."
        )
        self.logged_in = gauge(
            "logged_in", "1 when yt-dlp would treat the jar as logged in (LOGIN_INFO + SAPISID)."
        )
        self.login_session_changed_timestamp_seconds = gauge(
            "login_session_changed_timestamp_seconds",
            "When a new login session (changed login cookie values) last appeared.",
        )

        # Refresh queue (issue: Bull)
        self.refresh_requests_total = counter(
            "refresh_requests_total",
            "Refresh requests by what became of them.",
            ("source", "reason", "outcome"),
        )
        self.refresh_jobs_enqueued_total = counter(
            "refresh_jobs_enqueued_total",
            "Refresh jobs put into the Bull queue.",
            ("source", "reason"),
        )
        self.refresh_jobs_finished_total = counter(
            "refresh_jobs_finished_total",
            "Refresh jobs that reached a final state.",
            ("source", "outcome"),
        )
        self.refresh_success_ratio = gauge(
            "refresh_success_ratio", "Share of the last 20 finished refresh jobs that completed."
        )
        self.refresh_last_success_timestamp_seconds = gauge(
            "refresh_last_success_timestamp_seconds", "When a refresh job last completed."
        )
        self.refresh_last_failure_timestamp_seconds = gauge(
            "refresh_last_failure_timestamp_seconds", "When a refresh job last failed for good."
        )
        self.refresh_pending = gauge(
            "refresh_pending", "1 while a refresh job is waiting, delayed or active."
        )
        self.queue_jobs = gauge(
            "queue_jobs", "Jobs in the Bull queue by state, as getJobCounts().", ("queue", "state")
        )
        self.redis_up = Gauge(f"{NS}_redis_up", "1 when Redis answered the last call.", registry=r)

        # Validation (issue: probes)
        self.validation_runs_total = counter(
            "validation_runs_total",
            "Validation runs by result (ok or a reason).",
            ("source", "result"),
        )
        self.validation_duration_seconds = Histogram(
            f"{NS}_validation_duration_seconds",
            "Wall time of one validation run.",
            ["source"],
            buckets=VALIDATION_BUCKETS,
            registry=r,
        )
        self.validation_success = gauge("validation_success", "1 when the last validation passed.")
        self.validation_last_run_timestamp_seconds = gauge(
            "validation_last_run_timestamp_seconds", "When the last validation finished."
        )
        self.validation_last_success_timestamp_seconds = gauge(
            "validation_last_success_timestamp_seconds", "When a validation last passed."
        )
        self.refresh_verifications_total = counter(
            "refresh_verifications_total",
            "Whether a completed refresh fixed the cookies.",
            ("source", "result"),
        )
        self.rotation_due_timestamp_seconds = gauge(
            "rotation_due_timestamp_seconds", "When the next proactive rotation is due."
        )

    def init_source(self, source: str, modified: Callable[[], float | None]) -> None:
        """Create the series a source always has, so rates and alerts see them from the start."""
        self.file_changes_total.labels(source)
        for outcome in FINISH_OUTCOMES:
            self.refresh_jobs_finished_total.labels(source, outcome)
        for result in VERIFICATION_RESULTS:
            self.refresh_verifications_total.labels(source, result)
        self.validation_runs_total.labels(source, VALIDATION_OK)
        self.refresh_requests_total.labels(source, Reason.MANUAL, "enqueued")
        self.refresh_pending.labels(source).set(0)
        self._mtimes[source] = modified

    def set_queue_counts(self, queue: str, counts: dict[str, int]) -> None:
        for state in QUEUE_STATES:
            self.queue_jobs.labels(queue, state).set(counts.get(state, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _AgeCollector(Collector):
    """`file_age_seconds`, computed at scrape time; no sample while the file is missing."""

    def __init__(self, mtimes: dict[str, Callable[[], float | None]]) -> None:
        self._mtimes = mtimes

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            f"{NS}_file_age_seconds",
            "Seconds since the cookie file was last modified (at scrape time).",
            labels=["source"],
        )
        now = time.time()
        for source, modified in self._mtimes.items():
            mtime = modified()
            if mtime is not None:
                family.add_metric([source], max(0.0, now - mtime))
        yield family
