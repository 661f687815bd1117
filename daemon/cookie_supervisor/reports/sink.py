"""Where a follower's findings go: the report callback and the three series it counts with.

Shared by the journal and log-file followers, so neither imports the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("cookie_supervisor.reports")

OnReport = Callable[[str, str, str], None]  # (source, text, input)


class _Count(Protocol):
    def inc(self, amount: float = ...) -> None: ...


class _Level(Protocol):
    def set(self, value: float) -> None: ...


class _Counters(Protocol):
    def labels(self, *values: str) -> _Count: ...


class _Gauges(Protocol):
    def labels(self, *values: str) -> _Level: ...


class ReportMetrics(Protocol):
    """What the followers count with, by shape: `metrics.Metrics`, or prometheus_client's
    Counter and Gauge labelled (source, input)."""

    @property
    def report_lines_read_total(self) -> _Counters: ...
    @property
    def report_lines_matched_total(self) -> _Counters: ...
    @property
    def report_input_up(self) -> _Gauges: ...


def deliver(on_report: OnReport, source: str, text: str, input_: str) -> None:
    try:
        on_report(source, text, input_)
    except Exception:  # a bad report must not stop the follower
        log.exception("report handler failed for source %s", source)
