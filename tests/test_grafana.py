"""The Grafana dashboard: provisioning-safe structure, alert limits and runbook links, and every
panel answered by a real Prometheus whose series open a runbook section the daemon serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from cookie_supervisor import runbook
from tests.support import (
    ROOT,
    Daemon,
    MediaServer,
    NodeProcess,
    cookie_jar,
    daemon_env,
    exported_metric_names,
    free_port,
    wait_for,
    write_atomic,
)

GRAFANA = ROOT / "grafana"
DASHBOARD = json.loads((GRAFANA / "cookie-supervisor.json").read_text())
PANELS = [p for p in DASHBOARD["panels"] if p["type"] != "row"]
EXPRS = [(p["title"], t["expr"]) for p in PANELS for t in p["targets"]]
RULES_FILE = ROOT / "alerts" / "cookie-supervisor.rules.yml"
RULES = [r for g in yaml.safe_load(RULES_FILE.read_text())["groups"] for r in g["rules"]]
ALERTS = {r["alert"]: r["expr"] for r in RULES if "alert" in r}
LIMITS = {  # threshold record name → its number, from `expr: vector(N)`
    r["record"]: float(r["expr"].removeprefix("vector(").removesuffix(")"))
    for r in RULES
    if r.get("record", "").startswith("cookie_supervisor:threshold_")
}
# The sections of the runbook the daemon serves at GET /runbook (the packaged RUNBOOK.md).
RUNBOOK_ANCHORS = runbook.anchors(runbook.text())
# A series' link to the runbook of the daemon that exported it, as the rules' runbook_url.
RUNBOOK_LINK = re.compile(r"http://\$\{__field\.labels\.instance\}/runbook#([\w-]+)")


def links(node: Any) -> Iterator[dict[str, Any]]:
    """Every link anywhere in `node`: dashboard, panel, data and override links alike."""
    if isinstance(node, dict):
        if isinstance(node.get("url"), str):
            yield node
        for value in node.values():
            yield from links(value)
    elif isinstance(node, list):
        for value in node:
            yield from links(value)


def runbook_links(node: Any) -> list[dict[str, Any]]:
    return [
        link
        for link in links(node)
        if "runbook" in link["url"].lower() or "runbook" in link.get("title", "").lower()
    ]


def runbook_link_problem(url: str) -> str | None:
    """Why `url` does not open a section of the exporting daemon's runbook; None when it does."""
    match = RUNBOOK_LINK.fullmatch(url)
    if match is None:
        return f"not the /runbook of the daemon that exported the series: {url}"
    if match[1] not in RUNBOOK_ANCHORS:
        return f"no section #{match[1]} in the runbook the daemon serves"
    return None


def linked_alerts(panel: dict[str, Any]) -> list[str]:
    return [link["url"].rsplit("#", 1)[1] for link in runbook_links(panel)]


def test_committed_json_is_what_build_py_writes() -> None:
    out = subprocess.run([sys.executable, str(GRAFANA / "build.py"), "--check"], timeout=60)
    assert out.returncode == 0, "grafana/cookie-supervisor.json is stale: run grafana/build.py"


def test_structure_survives_provisioning() -> None:
    assert DASHBOARD["uid"] == "cookie-supervisor"
    assert "__inputs" not in DASHBOARD and "${DS_" not in json.dumps(DASHBOARD)
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"instance", "source"} <= variables.keys()
    for panel in PANELS:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{panel['title']}: no unit"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}"
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


@pytest.mark.parametrize(("title", "expr"), EXPRS, ids=[t for t, _ in EXPRS])
def test_rates_use_rate_interval_and_real_metrics(title: str, expr: str) -> None:
    """$__rate_interval, or the window of the alert the panel shows (its quantity exactly)."""
    [panel] = [p for p in PANELS if p["title"] == title]
    alert_exprs = [e for name, e in ALERTS.items() if name.lower() in linked_alerts(panel)]
    for window in re.findall(r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]+)\]", expr):
        shown = any(f"[{window}]" in e for e in alert_exprs)
        assert window == "$__rate_interval" or shown, f"{title}: [{window}]"
    used = set(re.findall(r"\b(?:cookie_supervisor|process)_[a-z_]+\b", expr))
    assert used and used <= exported_metric_names() | {"process_resident_memory_bytes"}, used


def test_the_panels_an_operator_needs_are_there() -> None:
    titles = " | ".join(p["title"].lower() for p in PANELS)
    for needle in (
        "failure reports by reason",
        "in a row",
        "backoff remaining",
        "diagnosis",
        "webhook deliveries",
        "webhook outbox",
        "refresh jobs triggered",
        "refresh success rate",
        "time since last successful refresh",
        "cookie file age",
        "cookie file",
        "expiry countdown",
        "validation duration",
        "last validation",
        "requests by outcome",
        "queue jobs by state",
        "redis",
    ):
        assert needle in titles, needle


def test_every_panel_says_what_it_shows() -> None:
    for panel in DASHBOARD["panels"]:
        if panel["type"] != "row":
            assert len(panel["description"]) > 20, panel["title"]
    rows = [p["title"] for p in DASHBOARD["panels"] if p["type"] == "row"]
    assert len(rows) == len(set(rows)) and all(rows)


def test_every_alert_is_on_a_panel_that_links_its_runbook_entry() -> None:
    linked = {name for panel in PANELS for name in linked_alerts(panel)}
    assert linked == {name.lower() for name in ALERTS}
    names = {name.lower(): name for name in ALERTS}
    for panel in PANELS:
        # From each series (a data link): a panel-level link cannot know which daemon to open.
        assert "links" not in panel, panel["title"]
        for link in runbook_links(panel):
            assert link in panel["fieldConfig"]["defaults"]["links"], panel["title"]
            anchor = link["url"].rsplit("#", 1)[1]
            assert link["title"] == f"Runbook: {names[anchor]}" and link["targetBlank"], link


def test_every_runbook_link_opens_a_section_the_daemon_serves() -> None:
    found = runbook_links(DASHBOARD)
    assert len(found) >= len(ALERTS)
    for link in found:
        assert runbook_link_problem(link["url"]) is None, runbook_link_problem(link["url"])
    assert "example" not in json.dumps(DASHBOARD)  # no placeholder host anywhere


def test_runbook_link_check_can_fail() -> None:
    assert (
        runbook_link_problem("http://${__field.labels.instance}/runbook#cookiefilemissing") is None
    )
    for bad in (
        "https://wiki.invalid/cookie-supervisor/RUNBOOK.md#cookiefilemissing",  # a placeholder
        "http://${__field.labels.instance}/runbook#cookiefilemising",  # no such section
        "http://${instance}/runbook#cookiefilemissing",  # "All" is a regex, not a host
        "http://${__field.labels.instance}/runbook",  # no section at all
    ):
        assert runbook_link_problem(bad), bad
    assert runbook_links({"panels": [{"links": [{"title": "Runbook", "url": "x"}]}]})


def test_thresholds_are_the_alert_limits() -> None:
    """A panel showing an alert's quantity draws that alert's limit, from the rules file."""
    checked = 0
    for panel in PANELS:
        steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
        values = {s["value"] for s in steps if s["value"] is not None}
        for name, expr in ALERTS.items():
            if name.lower() not in linked_alerts(panel):
                continue
            records = re.findall(r"cookie_supervisor:threshold_\w+", expr)
            if records and panel["type"] == "timeseries":
                limits = {LIMITS[r] for r in records}
                assert values & limits, (panel["title"], name, values, limits)
                checked += 1
    assert checked >= 7


def test_provisioning_files() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"]
    assert source["isDefault"] is False  # Grafana refuses a second default data source
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == source["uid"]
    dash = yaml.safe_load((GRAFANA / "provisioning/dashboards/cookie-supervisor.yml").read_text())
    [provider] = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


# --- live: real Prometheus scraping a real daemon that went through a whole refresh ----------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Any]:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make test installs it)"

    class Prometheus:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc: subprocess.Popen[bytes] | None = None

        def start(self, target: str) -> None:
            config = tmp_path / "prometheus.yml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                        "scrape_configs": [
                            {
                                "job_name": "cookie-supervisor",
                                "static_configs": [{"targets": [target]}],
                            }
                        ],
                    }
                )
            )
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tempfile.mkdtemp()}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for(
                lambda: httpx.get(self.url + "/-/ready", timeout=2).status_code == 200,
                timeout=30,
                what="prometheus ready",
            )

        def query(self, expr: str) -> dict[str, Any]:
            return dict(
                httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10).json()
            )

    prom = Prometheus()
    yield prom
    if prom.proc:
        prom.proc.terminate()
        prom.proc.wait(10)


@pytest.fixture
def webhook_receiver() -> Iterator[str]:
    """A loopback webhook receiver that accepts everything, so the webhook panels have series."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def substitute(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "15s")
        .replace("$instance", ".*")
        .replace("$source", "default")
    )


def test_every_panel_returns_series_from_real_prometheus(
    redis_url: str, tmp_path: Path, prometheus: Any, webhook_receiver: str
) -> None:
    gate = MediaServer(require_cookie="session=fresh")
    session = "127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\t{}"
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(extra_lines=(session.format("stale"),)))
    fresh = tmp_path / "fresh.txt"
    fresh.write_text(cookie_jar(mark="NewSession", extra_lines=(session.format("fresh"),)))
    worker = NodeProcess("extractor.js", {"REDIS_URL": redis_url, "JAR_FILE": str(fresh)})
    daemon = Daemon(
        env=daemon_env(
            redis_url,
            jar,
            COOKIE_SUPERVISOR_VALIDATION_URLS=gate.url(),
            COOKIE_SUPERVISOR_VALIDATE_EVERY="0",
            COOKIE_SUPERVISOR_WEBHOOK_URL=webhook_receiver,
        )
    )
    try:
        worker.wait("ready")
        daemon.start()
        prometheus.start(f"127.0.0.1:{daemon.port}")
        # A failure fresh cookies cannot fix, as the backend would report it: counted, no job.
        report = daemon.post(
            "/api/cookies/trigger-refresh",
            json={
                "reason": "rate_limited",
                "error": "This content isn't available, try again later",
            },
        )
        assert report.status_code == 200 and report.json()["triggered"] is False
        # start-up validation fails → refresh → upload → revalidation passes → verified
        daemon.wait_one_verdict("verified", timeout=60)
        # rates need two samples in their window: wait for three scrapes of the final state
        wait_for(
            lambda: prometheus.query(
                "count_over_time(cookie_supervisor_refresh_verifications_total"
                '{result="verified"}[15s]) >= 3'
            )["data"]["result"],
            timeout=30,
            what="prometheus has scraped the verified refresh three times",
        )
        empty = []
        pages: dict[str, str] = {}
        for title, expr in EXPRS:
            answer = prometheus.query(substitute(expr))
            assert answer["status"] == "success", (title, answer)
            if not answer["data"]["result"]:
                empty.append(title)
            [panel] = [p for p in PANELS if p["title"] == title]
            # Each series' runbook link, as Grafana fills it in, opens its section on the daemon.
            for series in answer["data"]["result"]:
                for link in runbook_links(panel):
                    instance = series["metric"].get("instance")
                    assert instance == f"127.0.0.1:{daemon.port}", (title, series["metric"])
                    url = link["url"].replace("${__field.labels.instance}", instance)
                    page, anchor = url.split("#")
                    if page not in pages:
                        served = httpx.get(page, timeout=10)
                        assert served.status_code == 200, (url, served.status_code)
                        pages[page] = served.text
                    assert f'id="{anchor}"' in pages[page], (title, url)
        assert not empty, f"panels with no series: {empty}"
        assert len(pages) == 1
    finally:
        daemon.stop()
        worker.stop()
        gate.shutdown()
