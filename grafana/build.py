"""Writes grafana/cookie-supervisor.json: the dashboard as code (stdlib only).

    python3 grafana/build.py          # rewrite the JSON after changing a panel here
    python3 grafana/build.py --check  # exit 1 when the committed JSON is out of date

Provisioning-friendly: a `datasource` template variable instead of `__inputs`, a fixed uid, and
`$__rate_interval` in every rate. Only metric names from daemon/cookie_supervisor/metrics.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("cookie-supervisor.json")
UID = "cookie-supervisor"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance", source=~"$source"'
INST = 'instance=~"$instance"'

_ids = iter(range(1, 1000))
_y = 0


def row(title: str) -> dict[str, Any]:
    global _y
    panel = {
        "type": "row",
        "title": title,
        "id": next(_ids),
        "collapsed": False,
        "gridPos": {"h": 1, "w": 24, "x": 0, "y": _y},
        "panels": [],
    }
    _y += 1
    return panel


def panel(
    kind: str,
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    *,
    x: int,
    w: int,
    h: int = 8,
    description: str = "",
    **options: Any,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": kind,
        "title": title,
        "description": description,
        "id": next(_ids),
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": _y},
        "fieldConfig": {"defaults": {"unit": unit, **options.pop("defaults", {})}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    p["options"] = options or (
        {"reduceOptions": {"calcs": ["lastNotNull"]}} if kind == "stat" else {}
    )
    return p


def line(
    title: str,
    targets: list[tuple[str, str]],
    unit: str,
    *,
    x: int,
    w: int = 12,
    description: str = "",
    **options: Any,
) -> dict[str, Any]:
    return panel("timeseries", title, targets, unit, x=x, w=w, description=description, **options)


def up_down(
    title: str, expr: str, legend: str, good: str, bad: str, *, x: int, description: str = ""
) -> dict[str, Any]:
    mappings = [
        {
            "type": "value",
            "options": {
                "0": {"text": bad, "color": "red", "index": 0},
                "1": {"text": good, "color": "green", "index": 1},
            },
        }
    ]
    return panel(
        "stat",
        title,
        [(expr, legend)],
        "none",
        x=x,
        w=4,
        h=4,
        description=description,
        defaults={
            "mappings": mappings,
            "color": {"mode": "thresholds"},
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
            },
        },
        reduceOptions={"calcs": ["lastNotNull"]},
        colorMode="background",
    )


def counter_line(
    title: str, counter: str, by: str, *, x: int, w: int = 8, description: str = ""
) -> dict[str, Any]:
    """How much a counter grew per rate interval, one series per source and `by`."""
    expr = f"sum by (source, {by}) (increase({counter}{{{SEL}}}[$__rate_interval]))"
    legend = "{{source}} {{" + by + "}}"
    return line(title, [(expr, legend)], "short", x=x, w=w, description=description)


def next_row(height: int) -> None:
    global _y
    _y += height


def panels() -> list[dict[str, Any]]:
    out = [row("Now")]
    out += [
        up_down(
            "Cookie file",
            f"cookie_supervisor_file_present{{{SEL}}}",
            "{{source}}",
            "present",
            "MISSING",
            x=0,
        ),
        up_down(
            "Logged in (yt-dlp's rule)",
            f"cookie_supervisor_logged_in{{{SEL}}}",
            "{{source}}",
            "logged in",
            "LOGGED OUT",
            x=4,
        ),
        up_down(
            "Last validation",
            f"cookie_supervisor_validation_success{{{SEL}}}",
            "{{source}}",
            "passed",
            "FAILED",
            x=8,
        ),
        up_down(
            "Redis", f"cookie_supervisor_redis_up{{{INST}}}", "{{instance}}", "up", "DOWN", x=12
        ),
        panel(
            "stat",
            "Refresh pending",
            [(f"cookie_supervisor_refresh_pending{{{SEL}}}", "{{source}}")],
            "none",
            x=16,
            w=4,
            h=4,
            description="1 while a refresh job waits, is delayed or runs",
        ),
        panel(
            "stat",
            "Cookie file permissions",
            [(f"cookie_supervisor_file_secure_permissions{{{SEL}}}", "{{source}}")],
            "none",
            x=20,
            w=4,
            h=4,
            description="1: no group/other bits (0600)",
        ),
    ]
    next_row(4)
    out.append(row("The seed's four"))
    out += [
        counter_line(
            "Refresh jobs triggered",
            "cookie_supervisor_refresh_jobs_enqueued_total",
            "reason",
            x=0,
            w=6,
        ),
        panel(
            "stat",
            "Refresh success rate (last 20 jobs)",
            [(f"cookie_supervisor_refresh_success_ratio{{{SEL}}}", "{{source}}")],
            "percentunit",
            x=6,
            w=6,
            defaults={"min": 0, "max": 1},
        ),
        panel(
            "stat",
            "Time since last successful refresh",
            [
                (
                    f"time() - cookie_supervisor_refresh_last_success_timestamp_seconds{{{SEL}}}",
                    "{{source}}",
                )
            ],
            "s",
            x=12,
            w=6,
        ),
        line(
            "Cookie file age",
            [(f"cookie_supervisor_file_age_seconds{{{SEL}}}", "{{source}}")],
            "s",
            x=18,
            w=6,
            description="Since the last write; the backend's yt-dlp rewrites the file after every download",
        ),
    ]
    next_row(8)
    out.append(row("Cookies"))
    out += [
        line(
            "Login-cookie expiry countdown",
            [(f"cookie_supervisor_login_expiry_timestamp_seconds{{{SEL}}} - time()", "{{source}}")],
            "s",
            x=0,
            w=8,
            description="Earliest expiry among the login cookies",
        ),
        line(
            "Rotation due in",
            [(f"cookie_supervisor_rotation_due_timestamp_seconds{{{SEL}}} - time()", "{{source}}")],
            "s",
            x=8,
            w=8,
            description="Negative: overdue",
        ),
        line(
            "Login session age",
            [
                (
                    f"time() - cookie_supervisor_login_session_changed_timestamp_seconds{{{SEL}}}",
                    "{{source}}",
                )
            ],
            "s",
            x=16,
            w=8,
            description="Since a new login session arrived",
        ),
    ]
    next_row(8)
    out += [
        line(
            "Cookies in the file",
            [
                (f"cookie_supervisor_file_cookies{{{SEL}}}", "{{source}} cookies"),
                (f"cookie_supervisor_file_login_cookies{{{SEL}}}", "{{source}} login cookies"),
                (f"cookie_supervisor_file_malformed_lines{{{SEL}}}", "{{source}} malformed lines"),
            ],
            "short",
            x=0,
            w=8,
        ),
        line(
            "File size",
            [(f"cookie_supervisor_file_size_bytes{{{SEL}}}", "{{source}}")],
            "bytes",
            x=8,
            w=8,
        ),
        line(
            "File changes",
            [
                (
                    f"sum by (source) (rate(cookie_supervisor_file_changes_total{{{SEL}}}[$__rate_interval]))",
                    "{{source}}",
                )
            ],
            "ops",
            x=16,
            w=8,
        ),
    ]
    next_row(8)
    out.append(row("Validation"))
    out += [
        counter_line(
            "Validation runs by result", "cookie_supervisor_validation_runs_total", "result", x=0
        ),
        line(
            "Validation duration",
            [
                (
                    f"histogram_quantile(0.5, sum by (source, le) (rate(cookie_supervisor_validation_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "{{source}} p50",
                ),
                (
                    f"histogram_quantile(0.95, sum by (source, le) (rate(cookie_supervisor_validation_duration_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                    "{{source}} p95",
                ),
            ],
            "s",
            x=8,
            w=8,
        ),
        line(
            "Time since the last passing validation",
            [
                (
                    f"time() - cookie_supervisor_validation_last_success_timestamp_seconds{{{SEL}}}",
                    "{{source}}",
                )
            ],
            "s",
            x=16,
            w=8,
        ),
    ]
    next_row(8)
    out.append(row("Refresh queue"))
    out += [
        counter_line(
            "Refresh requests by outcome",
            "cookie_supervisor_refresh_requests_total",
            "outcome",
            x=0,
            description="enqueued, coalesced (a job was pending), cooldown, deferred (Redis down)",
        ),
        line(
            "Queue jobs by state",
            [(f"max by (queue, state) (cookie_supervisor_queue_jobs{{{INST}}})", "{{state}}")],
            "short",
            x=8,
            w=8,
            description="As bull's getJobCounts()",
        ),
        counter_line(
            "Refresh jobs finished",
            "cookie_supervisor_refresh_jobs_finished_total",
            "outcome",
            x=16,
        ),
    ]
    next_row(8)
    out += [
        counter_line(
            "Refresh verification",
            "cookie_supervisor_refresh_verifications_total",
            "result",
            x=0,
            description="Did a completed refresh fix things? verified, still_failing, no_upload",
        ),
        line(
            "Redis reachable",
            [(f"cookie_supervisor_redis_up{{{INST}}}", "{{instance}}")],
            "none",
            x=8,
            w=8,
            defaults={"min": 0, "max": 1},
        ),
        line(
            "Daemon memory (RSS)",
            [
                (
                    f"process_resident_memory_bytes{{{INST}}} and on (instance) cookie_supervisor_build_info",
                    "{{instance}} RSS",
                ),
            ],
            "bytes",
            x=16,
            w=8,
        ),
    ]
    next_row(8)
    return out


def variables() -> list[dict[str, Any]]:
    def query_var(name: str, label: str, query: str) -> dict[str, Any]:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DS,
            "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
            "definition": query,
            "refresh": 2,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"text": "All", "value": "$__all"},
            "sort": 1,
        }

    return [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        },
        query_var("instance", "Instance", "label_values(cookie_supervisor_build_info, instance)"),
        query_var(
            "source",
            "Cookie jar",
            'label_values(cookie_supervisor_file_present{instance=~"$instance"}, source)',
        ),
    ]


def dashboard() -> dict[str, Any]:
    return {
        "uid": UID,
        "title": "cookie-supervisor",
        "description": "YouTube cookie health of the yt-dlp download backend",
        "tags": ["cookie-supervisor", "yt-dlp"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "1m",
        "schemaVersion": 39,
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "",
        "templating": {"list": variables()},
        "annotations": {"list": []},
        "links": [],
        "panels": panels(),
        "version": 1,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else 1)
    OUT.write_text(text)
