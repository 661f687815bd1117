"""Writes grafana/cookie-supervisor.json: the dashboard as code (stdlib only).

    python3 grafana/build.py          # rewrite the JSON after changing a panel here
    python3 grafana/build.py --check  # exit 1 when the committed JSON is out of date

Provisioning-friendly: a `datasource` template variable instead of `__inputs`, a fixed uid, and
`$__rate_interval` in every rate (a panel that shows an alert's own quantity uses the alert's
window). Only metric names from daemon/cookie_supervisor/metrics.py. Every panel says what it
shows; a panel that shows what an alert watches links the alert's runbook entry from each of its
series (a data link) and draws the alert's limit, read from the rules file's threshold records so
the two never disagree.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).with_name("cookie-supervisor.json")
RULES = Path(__file__).resolve().parent.parent / "alerts" / "cookie-supervisor.rules.yml"
# The runbook the daemon serves itself (GET /runbook), at the address Prometheus scrapes it on: the
# alert rules' runbook_url, so a mail and the dashboard open the same page. A per-series data link
# rather than a dashboard variable for a base URL: the series knows which daemon exported it, so the
# link opens the runbook of that very version, works for several daemons at once and needs no
# setting; a variable would hold one URL for all daemons, and no default for it could be right
# without a placeholder. Every linked panel keeps `instance` in its series for this.
RUNBOOK = "http://${__field.labels.instance}/runbook"
UID = "cookie-supervisor"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance", source=~"$source"'
INST = 'instance=~"$instance"'
# Series that exist only while something is wrong fall back to 0 per source, so a healthy
# source reads 0 instead of "No data".
ZERO = f"or on (instance, source) max by (instance, source) (0 * cookie_supervisor_file_present{{{SEL}}})"


def limits() -> dict[str, float]:
    """The alert thresholds: `cookie_supervisor:threshold_NAME` records of the rules file."""
    found = re.findall(
        r"record: cookie_supervisor:threshold_(\w+)\s+expr: vector\(([\d.]+)\)", RULES.read_text()
    )
    return {name: float(value) for name, value in found}


LIMIT = limits()
Line = list[dict[str, Any]]

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
    description: str,
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
    description: str,
    **options: Any,
) -> dict[str, Any]:
    return panel("timeseries", title, targets, unit, x=x, w=w, description=description, **options)


def up_down(
    title: str, expr: str, legend: str, good: str, bad: str, *, x: int, description: str
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
        w=3,
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
    title: str, counter: str, by: str, *, x: int, w: int = 8, description: str
) -> dict[str, Any]:
    """How much a counter grew per rate interval, one series per source and `by`."""
    expr = f"sum by (source, {by}) (increase({counter}{{{SEL}}}[$__rate_interval]))"
    legend = "{{source}} {{" + by + "}}"
    return line(title, [(expr, legend)], "short", x=x, w=w, description=description)


def alerting(
    p: dict[str, Any], *alerts: str, limit: float | None = None, below: bool = False
) -> dict[str, Any]:
    """Link the runbook entries of `alerts` from every series; draw `limit` (red above or below)."""
    p["fieldConfig"]["defaults"]["links"] = [
        {"title": f"Runbook: {name}", "url": f"{RUNBOOK}#{name.lower()}", "targetBlank": True}
        for name in alerts
    ]
    if limit is not None:
        ok, bad = {"color": "green", "value": None}, {"color": "red", "value": None}
        steps = (
            [bad, {"color": "green", "value": limit}]
            if below
            else [ok, {"color": "red", "value": limit}]
        )
        defaults = p["fieldConfig"]["defaults"]
        defaults["thresholds"] = {"mode": "absolute", "steps": steps}
        if p["type"] == "timeseries":
            defaults["custom"] = {"thresholdsStyle": {"mode": "line+area"}}
        else:
            defaults["color"] = {"mode": "thresholds"}
    return p


def next_row(height: int) -> None:
    global _y
    _y += height


def now_row() -> list[dict[str, Any]]:
    return [
        alerting(
            up_down(
                "Daemon",
                f"up{{{INST}}} and on (instance, job) max_over_time(cookie_supervisor_build_info{{{INST}}}[1d])",
                "{{instance}}",
                "up",
                "DOWN",
                x=0,
                description="Prometheus scrapes the daemon (targets that exported its metrics in the last day)",
            ),
            "CookieSupervisorDown",
            "CookieSupervisorMetricsAbsent",
        ),
        alerting(
            up_down(
                "Cookie file",
                f"cookie_supervisor_file_present{{{SEL}}}",
                "{{source}}",
                "present",
                "MISSING",
                x=3,
                description="The cookie file exists at its path",
            ),
            "CookieFileMissing",
        ),
        alerting(
            up_down(
                "Logged in (yt-dlp's rule)",
                f"cookie_supervisor_logged_in{{{SEL}}}",
                "{{source}}",
                "logged in",
                "LOGGED OUT",
                x=6,
                description="LOGIN_INFO and a SAPISID cookie are present and unexpired, as yt-dlp decides it",
            ),
            "CookieJarLoggedOut",
        ),
        alerting(
            up_down(
                "Last validation",
                f"cookie_supervisor_validation_success{{{SEL}}}",
                "{{source}}",
                "passed",
                "FAILED",
                x=9,
                description="Whether the last validation download with these cookies passed",
            ),
            "CookieValidationFailing",
        ),
        alerting(
            up_down(
                "Redis",
                f"cookie_supervisor_redis_up{{{INST}}}",
                "{{instance}}",
                "up",
                "DOWN",
                x=12,
                description="The Redis of the refresh queue answered the daemon's last call",
            ),
            "CookieSupervisorRedisDown",
        ),
        panel(
            "stat",
            "Refresh pending",
            [(f"cookie_supervisor_refresh_pending{{{SEL}}}", "{{source}}")],
            "none",
            x=15,
            w=3,
            h=4,
            description="1 while a refresh job waits, is delayed or runs; no value while Redis is down",
        ),
        alerting(
            up_down(
                "Cookie file permissions",
                f"cookie_supervisor_file_secure_permissions{{{SEL}}}",
                "{{source}}",
                "0600",
                "OPEN",
                x=18,
                description="1: no group/other permission bits; 0: other users can copy the session",
            ),
            "CookieFileReadableByOthers",
        ),
        alerting(
            panel(
                "stat",
                "Cookie file problem",
                [
                    (
                        f"max by (instance, source, reason) (cookie_supervisor_file_problem{{{SEL}}}) {ZERO}",
                        "{{source}} {{reason}}",
                    )
                ],
                "none",
                x=21,
                w=3,
                h=4,
                description="1 with the reason while the file is missing, corrupt, logged out, expired, unreadable or not a regular file",
            ),
            "CookieFileUnreadable",
            limit=1,
        ),
    ]


def refresh_health_row() -> list[dict[str, Any]]:
    return [
        counter_line(
            "Refresh jobs triggered",
            "cookie_supervisor_refresh_jobs_enqueued_total",
            "reason",
            x=0,
            w=6,
            description="Refresh jobs put into the queue per interval, by the reason that asked",
        ),
        panel(
            "stat",
            "Refresh success rate (last 20 jobs)",
            [(f"cookie_supervisor_refresh_success_ratio{{{SEL}}}", "{{source}}")],
            "percentunit",
            x=6,
            w=6,
            defaults={"min": 0, "max": 1},
            description="Share of the last 20 finished refresh jobs that completed",
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
            description="Since a refresh job last completed",
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


def cookies_rows() -> list[Line]:
    first = [
        alerting(
            line(
                "Login-cookie expiry countdown",
                [
                    (
                        f"cookie_supervisor_login_expiry_timestamp_seconds{{{SEL}}} - time()",
                        "{{source}}",
                    )
                ],
                "s",
                x=0,
                w=8,
                description="Earliest expiry among the login cookies; the alert fires below the red line",
            ),
            "CookieLoginExpiringSoon",
            "CookieLoginExpired",
            limit=LIMIT["login_expiry_warning_seconds"],
            below=True,
        ),
        alerting(
            line(
                "Rotation overdue by",
                [
                    (
                        f"time() - cookie_supervisor_rotation_due_timestamp_seconds{{{SEL}}}",
                        "{{source}}",
                    )
                ],
                "s",
                x=8,
                w=8,
                description="Negative: time left until the proactive rotation; the alert fires above the red line",
            ),
            "CookieRotationOverdue",
            limit=LIMIT["rotation_overdue_seconds"],
        ),
        alerting(
            line(
                "Login session age and lifetime",
                [
                    (
                        f"time() - cookie_supervisor_login_session_changed_timestamp_seconds{{{SEL}}}",
                        "{{source}} age",
                    ),
                    (
                        f"histogram_quantile(0.5, sum by (instance, source, le) (cookie_supervisor_login_session_lifetime_seconds_bucket{{{SEL}}}))",
                        "{{source}} median lifetime",
                    ),
                ],
                "s",
                x=16,
                w=8,
                description="Since a new login session arrived (not the file's mtime), and the median lifetime of sessions seen to die since the daemon started; the alert fires when the last 3 lived less than the red line",
            ),
            "CookieSessionsDieFast",
            limit=LIMIT["session_lifetime_median_seconds"],
            below=True,
        ),
    ]
    second = [
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
            description="Cookies as yt-dlp reads the file; malformed lines are ones it would skip",
        ),
        line(
            "File size",
            [(f"cookie_supervisor_file_size_bytes{{{SEL}}}", "{{source}}")],
            "bytes",
            x=8,
            w=8,
            description="Size of the cookie file; no value while it is missing",
        ),
        alerting(
            line(
                "File changes and read errors",
                [
                    (
                        f"sum by (instance, source) (rate(cookie_supervisor_file_changes_total{{{SEL}}}[$__rate_interval]))",
                        "{{source}} changes",
                    ),
                    (
                        f"sum by (instance, source, errno) (rate(cookie_supervisor_file_read_errors_total{{{SEL}}}[$__rate_interval])) {ZERO}",
                        "{{source}} read errors {{errno}}",
                    ),
                ],
                "ops",
                x=16,
                w=8,
                description="Debounced changes of the file; OS errors reading it (descriptors, memory, disk) are the daemon's trouble",
            ),
            "CookieSupervisorReadErrors",
        ),
    ]
    return [first, second]


def validation_row() -> list[dict[str, Any]]:
    return [
        counter_line(
            "Validation runs by result",
            "cookie_supervisor_validation_runs_total",
            "result",
            x=0,
            description="Validation runs per interval: ok, or the reason they failed",
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
            description="Wall time of one validation (a yt-dlp child process)",
        ),
        alerting(
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
                description="The alert fires above the red line while validations keep running",
            ),
            "CookieValidationNoSuccess",
            limit=LIMIT["validation_success_age_seconds"],
        ),
    ]


def diagnosis_row() -> list[dict[str, Any]]:
    non_cookie = 'reason=~"rate_limited|ip_flagged|po_token_required"'
    return [
        alerting(
            line(
                "YouTube diagnosis",
                [
                    (
                        f"max by (instance, source, diagnosis) (cookie_supervisor_diagnosis{{{SEL}}}) {ZERO}",
                        "{{source}} {{diagnosis}}",
                    ),
                    (
                        f'max by (instance, source, reason) (cookie_supervisor_validation_failure{{{SEL}, reason=~"js_challenge_failed|no_js_runtime"}}) {ZERO}',
                        "{{source}} {{reason}}",
                    ),
                ],
                "none",
                x=0,
                w=8,
                defaults={"min": 0, "max": 1},
                description="1 while the latest validation's diagnosis stands: ip_flagged or po_token_required (the host), account_restricted (the account); and while the last validation failed because yt-dlp could not solve YouTube's JS challenges (js_challenge_failed, no_js_runtime); fresh cookies fix none of them",
            ),
            "YouTubeBlocksThisHost",
            "YouTubeAccountRestricted",
            "YtDlpChallengeSolvingFails",
            limit=1,
        ),
        counter_line(
            "Backend failure reports by reason",
            "cookie_supervisor_failure_reports_total",
            "reason",
            x=8,
            description="Every failure the backend reported (API, journal, log files), including the ones no refresh can fix",
        ),
        alerting(
            line(
                "Non-cookie failure reports (15 min)",
                [
                    (
                        f"sum by (instance, source, reason) (increase(cookie_supervisor_failure_reports_total{{{SEL}, {non_cookie}}}[15m]))",
                        "{{source}} {{reason}}",
                    )
                ],
                "short",
                x=16,
                w=8,
                description="Rate-limit, IP and PO-token failures the backend reported in the last 15 minutes; the alert fires above the red line",
            ),
            "BackendNonCookieFailureSurge",
            limit=LIMIT["non_cookie_failures_per_15m"],
        ),
    ]


def queue_rows() -> list[Line]:
    first = [
        counter_line(
            "Refresh requests by outcome",
            "cookie_supervisor_refresh_requests_total",
            "outcome",
            x=0,
            description="enqueued, coalesced (a job was pending), cooldown, backoff, deferred (Redis down), ignored (not fixable by fresh cookies)",
        ),
        alerting(
            line(
                "Queue jobs by state",
                [
                    (
                        f"max by (instance, queue, state) (cookie_supervisor_queue_jobs{{{INST}}})",
                        "{{state}}",
                    )
                ],
                "short",
                x=8,
                w=8,
                description="As bull's getJobCounts(); the backlog alert fires when waiting jobs stay above the red line",
            ),
            "CookieRefreshQueueBacklog",
            limit=LIMIT["queue_waiting_jobs"],
        ),
        counter_line(
            "Refresh jobs finished",
            "cookie_supervisor_refresh_jobs_finished_total",
            "outcome",
            x=16,
            description="Refresh jobs that completed or failed for good (after Bull's retries), per interval",
        ),
    ]
    second = [
        alerting(
            line(
                "Refresh jobs failed in the last hour",
                [
                    (
                        f'sum by (instance, source) (increase(cookie_supervisor_refresh_jobs_finished_total{{{SEL}, outcome="failed"}}[1h]))',
                        "{{source}}",
                    )
                ],
                "short",
                x=0,
                w=8,
                description="The alert fires above the red line",
            ),
            "CookieRefreshFailing",
            limit=LIMIT["refresh_failures_per_hour"],
        ),
        alerting(
            line(
                "Unsuccessful refreshes in a row",
                [(f"cookie_supervisor_refresh_consecutive_failures{{{SEL}}}", "{{source}}")],
                "short",
                x=8,
                w=8,
                description="Refreshes that ended failed, still_failing or no_upload since the last verified one; each doubles the backoff",
            ),
            "CookieRefreshIneffective",
            limit=LIMIT["refresh_consecutive_failures"],
        ),
        alerting(
            line(
                "Refresh backoff remaining",
                [
                    (
                        f"max by (instance, source) (cookie_supervisor_refresh_backoff_until_timestamp_seconds{{{SEL}}} - time()) {ZERO}",
                        "{{source}}",
                    )
                ],
                "s",
                x=16,
                w=8,
                description="How long automatic refreshes still wait; 0: no backoff",
            ),
            "CookieRefreshIneffective",
            limit=LIMIT["refresh_backoff_seconds"],
        ),
    ]
    third = [
        counter_line(
            "Refresh verification",
            "cookie_supervisor_refresh_verifications_total",
            "result",
            x=0,
            description="Did a completed refresh fix things? verified, still_failing, no_upload",
        ),
        alerting(
            line(
                "Pending jobs lost from Redis",
                [
                    (
                        f"sum by (instance, source) (increase(cookie_supervisor_pending_jobs_lost_total{{{SEL}}}[$__rate_interval]))",
                        "{{source}}",
                    )
                ],
                "short",
                x=8,
                w=8,
                description="Pending refresh jobs that vanished without finishing (Redis restarted empty, flushed, failed over)",
            ),
            "CookieRefreshJobLost",
        ),
        line(
            "Redis reachable",
            [(f"cookie_supervisor_redis_up{{{INST}}}", "{{instance}}")],
            "none",
            x=16,
            w=8,
            defaults={"min": 0, "max": 1},
            description="1 when Redis answered the daemon's last call",
        ),
    ]
    fourth = [
        alerting(
            line(
                "Refresh job waiting, untaken",
                [
                    (
                        f"max by (instance, source) ((time() - cookie_supervisor_refresh_pending_since_timestamp_seconds{{{SEL}}}) and on (instance, source) cookie_supervisor_refresh_pending_active{{{SEL}}} == 0) {ZERO}",
                        "{{source}}",
                    )
                ],
                "s",
                x=0,
                description="How long the pending refresh job has waited with no worker taking it; 0: none waits. Above the red line: is the extractor running?",
            ),
            "CookieRefreshJobNotTaken",
            limit=LIMIT["refresh_untaken_seconds"],
        ),
        alerting(
            line(
                "Refresh job held by a worker",
                [
                    (
                        f"max by (instance, source) (time() - cookie_supervisor_refresh_pending_active_since_timestamp_seconds{{{SEL}}}) {ZERO}",
                        "{{source}}",
                    ),
                    (
                        f"max by (instance, source) (cookie_supervisor_refresh_upload_timeout_seconds{{{SEL}}})",
                        "{{source}} upload_timeout",
                    ),
                ],
                "s",
                x=12,
                description="How long a worker has held the pending refresh job; the alert fires past the source's upload_timeout",
            ),
            "CookieRefreshJobStuck",
        ),
    ]
    return [first, second, third, fourth]


def notifications_row() -> list[dict[str, Any]]:
    return [
        alerting(
            line(
                "Webhook deliveries by outcome",
                [
                    (
                        f"sum by (instance, webhook, outcome) (increase(cookie_supervisor_webhook_deliveries_total{{{INST}}}[$__rate_interval]))",
                        "{{webhook}} {{outcome}}",
                    )
                ],
                "short",
                x=0,
                w=8,
                description="Notification attempts per interval: delivered, retried, failed (final 4xx), dropped (outbox full)",
            ),
            "CookieWebhookFailing",
        ),
        line(
            "Webhook outbox",
            [(f"max by (webhook) (cookie_supervisor_webhook_outbox{{{INST}}})", "{{webhook}}")],
            "short",
            x=8,
            w=8,
            description="Events waiting for delivery (kept across restarts)",
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
            description="Resident memory of the daemon (validations run in child processes, not counted here)",
        ),
    ]


def panels() -> list[dict[str, Any]]:
    """Rows of lines of panels; each line is placed below the previous one."""
    sections: list[tuple[str, list[Line], int]] = [
        ("Now", [now_row()], 4),
        ("Refresh health", [refresh_health_row()], 8),
        ("Cookies", cookies_rows(), 8),
        ("Validation", [validation_row()], 8),
        ("Diagnosis and backend reports", [diagnosis_row()], 8),
        ("Refresh queue", queue_rows(), 8),
        ("Notifications and the daemon", [notifications_row()], 8),
    ]
    out: list[dict[str, Any]] = []
    for title, lines, height in sections:
        out.append(row(title))
        for panels_in_line in lines:
            for item in panels_in_line:
                item["gridPos"]["y"] = _y
                out.append(item)
            next_row(height)
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
            # The provisioned data source (provisioning/datasources), else Grafana's default.
            "current": {"text": "Prometheus", "value": "prometheus-cookie-supervisor"},
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
