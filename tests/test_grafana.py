"""The Grafana dashboard: provisioning-safe structure, and every panel answered by a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

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
    for window in re.findall(r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]+)\]", expr):
        assert window == "$__rate_interval", f"{title}: [{window}]"
    used = set(re.findall(r"\b(?:cookie_supervisor|process)_[a-z_]+\b", expr))
    assert used and used <= exported_metric_names() | {"process_resident_memory_bytes"}, used


def test_the_seeds_four_and_the_issue_panels_are_there() -> None:
    titles = " | ".join(p["title"].lower() for p in PANELS)
    for needle in (
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


def test_provisioning_files() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert source["type"] == "prometheus" and source["uid"]
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


def substitute(expr: str) -> str:
    return (
        expr.replace("$__rate_interval", "15s")
        .replace("$instance", ".*")
        .replace("$source", "default")
    )


def test_every_panel_returns_series_from_real_prometheus(
    redis_url: str, tmp_path: Path, prometheus: Any
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
        )
    )
    try:
        worker.wait("ready")
        daemon.start()
        prometheus.start(f"127.0.0.1:{daemon.port}")
        # start-up validation fails → refresh → upload → revalidation passes → verified
        wait_for(
            lambda: (
                daemon.metric(
                    "cookie_supervisor_refresh_verifications_total",
                    source="default",
                    result="verified",
                )
                == 1
            ),
            timeout=60,
        )
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
        for title, expr in EXPRS:
            answer = prometheus.query(substitute(expr))
            assert answer["status"] == "success", (title, answer)
            if not answer["data"]["result"]:
                empty.append(title)
        assert not empty, f"panels with no series: {empty}"
    finally:
        daemon.stop()
        worker.stop()
        gate.shutdown()
