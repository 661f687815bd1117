"""Alert rules, their unit tests, their scoping, the runbook and the Alertmanager example, with the real tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cookie_supervisor import runbook
from tests.support import ROOT, Daemon, daemon_env, exported_metric_names

ALERTS = ROOT / "alerts"
RULES = ALERTS / "cookie-supervisor.rules.yml"
RULE_TESTS = sorted((ALERTS / "tests").glob("*.yml"))
RUNBOOK = ALERTS / "RUNBOOK.md"
ALERTMANAGER = ALERTS / "alertmanager" / "alertmanager.example.yml"
SEVERITIES = {"critical", "warning", "info"}


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed (make test installs it)"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for g in groups for rule in g["rules"] if "alert" in rule]


def test_promtool_check_rules_on_every_yml_in_alerts() -> None:
    """`promtool check rules alerts/*.yml`, as an operator would type it: rules files only there."""
    files = sorted(ALERTS.glob("*.yml"))
    assert files == [RULES]
    out = run(tool("promtool"), "check", "rules", *map(str, files))
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_test_rules() -> None:
    out = run(tool("promtool"), "test", "rules", *map(str, RULE_TESTS))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_tests_can_fail(tmp_path: Path) -> None:
    """A wrong expected annotation must fail promtool, or the suite above proves nothing."""
    (tmp_path / "tests").mkdir()
    shutil.copy(RULES, tmp_path / RULES.name)
    text = (
        RULE_TESTS[0]
        .read_text()
        .replace("Cookie file of main is missing", "Cookie file is fine", 1)
    )
    broken = tmp_path / "tests" / "broken.yml"
    broken.write_text(text)
    out = run(tool("promtool"), "test", "rules", str(broken))
    assert out.returncode != 0 and "Cookie file is fine" in out.stdout + out.stderr


def runbook_links(rule: dict[str, Any]) -> list[str]:
    return re.findall(r"/runbook#([\w-]+)", rule["annotations"]["runbook_url"])


def test_alerts_follow_the_mixin_conventions() -> None:
    rules = alert_rules()
    assert len(rules) >= 21
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"(?:[A-Z][a-z0-9]+)+", name), f"{name}: not CamelCase"
        assert rule["labels"]["severity"] in SEVERITIES, name
        notes = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= notes.keys(), name
        assert "$value" in notes["description"], f"{name}: description without the value"
        if "source" in rule["expr"] or "cookie_supervisor_file" in rule["expr"]:
            assert "$labels.source" in notes["description"] + notes["summary"], name
        # The daemon serves its own runbook: the link is the address Prometheus scrapes it on.
        url = notes["runbook_url"]
        assert "example" not in url, f"{name}: placeholder {url}"
        assert runbook_links(rule) == [name.lower()] * len(runbook_links(rule)), url
        assert runbook_links(rule), f"{name}: {url}"
        if name != "CookieSupervisorMetricsAbsent":  # no instance label: found by a query
            assert url == f"http://{{{{ $labels.instance }}}}/runbook#{name.lower()}", url


def test_every_runbook_link_has_its_section() -> None:
    anchors = runbook.anchors(RUNBOOK.read_text())
    for rule in alert_rules():
        for link in runbook_links(rule):
            assert link in anchors, f"{rule['alert']}: no section #{link} in RUNBOOK.md"


def test_runbook_link_test_can_fail() -> None:
    assert "cookiefilemissing" in runbook.anchors("## CookieFileMissing\n")
    assert "cookiefilemissing" not in runbook.anchors("## CookieFileMising\n")


def test_source_alerts_name_the_file_and_what_was_done() -> None:
    """Every alert about a source joins its info series, so its mail names the cookie file."""
    join = "group_left (cookies_file) cookie_supervisor:source_info:held"
    for rule in alert_rules():
        if "source" not in rule["expr"]:
            continue
        assert join in rule["expr"], rule["alert"]
        notes = rule["annotations"]
        assert notes["cookies_file"] == "{{ $labels.cookies_file }}", rule["alert"]
        assert "cookie_supervisor_refresh_job_info" in notes["action"], rule["alert"]


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
                for alert in case.get("exp_alerts") or []:
                    assert alert.get("exp_annotations"), case["alertname"]
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set(), "never tested firing"
    assert names - quiet == set(), "never tested quiet"


def test_rules_select_on_the_metric_prefix_not_a_job() -> None:
    for rule in alert_rules():
        assert "job=" not in rule["expr"] and "job!" not in rule["expr"], rule["alert"]


def scoped_rule_tests(tmp_path: Path, matcher: str) -> Path:
    """The rule tests against alerts/scope.py's output; absent() gains the matcher's labels."""
    scoped = run(sys.executable, str(ALERTS / "scope.py"), matcher)
    assert scoped.returncode == 0, scoped.stderr
    (tmp_path / RULES.name).write_text(scoped.stdout)
    (tmp_path / "tests").mkdir()
    tests = yaml.safe_load(RULE_TESTS[0].read_text())
    for test in tests["tests"]:
        for case in test.get("alert_rule_test", []):
            for alert in case.get("exp_alerts") or []:
                if case["alertname"] == "CookieSupervisorMetricsAbsent":
                    alert["exp_labels"]["job"] = "cookie-supervisor"
    path = tmp_path / "tests" / "scoped.yml"
    path.write_text(yaml.safe_dump(tests))
    return path


def test_scoped_rules_behave_the_same_for_their_job(tmp_path: Path) -> None:
    tests = scoped_rule_tests(tmp_path, 'job="cookie-supervisor"')
    rules = (tmp_path / RULES.name).read_text()
    assert rules.count('job="cookie-supervisor"') >= len(alert_rules())
    check = run(tool("promtool"), "check", "rules", str(tmp_path / RULES.name))
    assert check.returncode == 0, check.stdout + check.stderr
    out = run(tool("promtool"), "test", "rules", str(tests))
    assert out.returncode == 0, out.stdout + out.stderr


def test_scoped_rules_ignore_other_jobs(tmp_path: Path) -> None:
    out = run(tool("promtool"), "test", "rules", str(scoped_rule_tests(tmp_path, 'job="other"')))
    assert out.returncode != 0
    assert "CookieFileMissing" in out.stdout + out.stderr  # a firing case that no longer fires


def test_no_internal_jargon_in_user_facing_files() -> None:
    files = [
        *ALERTS.rglob("*.yml"),
        RUNBOOK,
        *(ROOT / "grafana").rglob("*.json"),
        *(ROOT / "grafana").rglob("*.yml"),
        *(ROOT / "systemd").iterdir(),
        *(ROOT / "scripts").iterdir(),
    ]
    for path in files:
        assert not re.search(r"\bseeds?\b", path.read_text(), re.I), path


def test_rules_use_only_exported_metrics() -> None:
    used = set(re.findall(r"\bcookie_supervisor_[a-z_]+\b", RULES.read_text()))
    assert used and used <= exported_metric_names(), used - exported_metric_names()


def test_amtool_check_config() -> None:
    out = run(tool("amtool"), "check-config", str(ALERTMANAGER))
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load(ALERTMANAGER.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    assert any("email_configs" in r for r in receivers.values())
    assert any("webhook_configs" in r for r in receivers.values())
    assert {"alertname", "source", "instance"} <= set(config["route"]["group_by"])
    # Alertmanager mutes resolutions too: the rules keep alerts apart, no inhibition does.
    assert config["inhibit_rules"] == []
    mail = receivers["email-and-webhook"]["email_configs"][0]
    assert mail["html"] == "" and "cookie_supervisor.text" in mail["text"]
    assert "cookie_supervisor.subject" in mail["headers"]["Subject"]
    assert (ALERTMANAGER.parent / config["templates"][0]).is_file()


def test_promtool_check_metrics_on_a_real_scrape(redis_url: str, jar: Path) -> None:
    d = Daemon(env=daemon_env(redis_url, jar)).start()
    try:
        exposition = d.metrics()
        page = d.get("/runbook")
    finally:
        d.stop()
    # The runbook the rules link to, served by the daemon, with a section for every alert.
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for rule in alert_rules():
        assert f'id="{rule["alert"].lower()}"' in page.text, rule["alert"]
    out = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "cookie_supervisor_file_present" in exposition
    info = f'cookie_supervisor_source_info{{source="default",cookies_file="{jar}"}} 1.0'
    assert info in exposition


@pytest.mark.parametrize("path", [RULES, ALERTMANAGER, *RULE_TESTS], ids=lambda p: p.name)
def test_yaml_parses(path: Path) -> None:
    assert yaml.safe_load(path.read_text())
