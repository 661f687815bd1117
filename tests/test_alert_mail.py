"""The whole alert path with real parts: the daemon, Prometheus loading the rules, Alertmanager with
the example config and its mail template, and an SMTP sink — all on 127.0.0.1, free ports.

Two changes to the shipped files, both timing only: the rules' `for:` become 1s in a test copy,
and the example config's group_wait/group_interval 1s, repeat_interval 1h; its SMTP host, the
webhook URLs and the template path point at this test's sinks and the repository. Prometheus
scrapes and evaluates every second. Everything else is as an operator would install it.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.support import (
    ROOT,
    Daemon,
    cookie_jar,
    daemon_env,
    free_port,
    source_config,
    terminate,
    wait_for,
    write_atomic,
)

ALERTS = ROOT / "alerts"
TEMPLATE = ALERTS / "alertmanager" / "cookie-supervisor.tmpl"
pytestmark = pytest.mark.slow


def binary(*names: str) -> str:
    for name in names:
        if path := shutil.which(name):
            return path
    raise AssertionError(f"none of {names} is installed (scripts/system-deps.sh test installs it)")


@dataclass
class Mail:
    subject: str
    body: str
    at: float


class Sink:
    """An SMTP server on loopback that keeps every message it is given."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(preferencelist=("plain", "html"))
        body = part.get_content() if part is not None else ""
        with self.lock:
            self.mails.append(Mail(str(msg["Subject"]), body, time.monotonic()))
        return "250 OK"

    def find(self, subject: str) -> Mail | None:
        with self.lock:
            return next((m for m in self.mails if m.subject == subject), None)

    def subjects(self) -> list[str]:
        with self.lock:
            return [m.subject for m in self.mails]


class _Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def rules_copy(path: Path) -> None:
    """The shipped rules with every `for:` shortened to 1s."""
    text = (ALERTS / "cookie-supervisor.rules.yml").read_text()
    short, n = re.subn(r"(?m)^(\s+for: )\S+$", r"\g<1>1s", text)
    assert n >= 10
    path.write_text(short)


def alertmanager_copy(path: Path, smtp_port: int, webhook: str) -> None:
    config = yaml.safe_load((ALERTS / "alertmanager" / "alertmanager.example.yml").read_text())
    g = config["global"]
    g["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"
    g["smtp_require_tls"] = False
    g.pop("smtp_auth_username")
    g.pop("smtp_auth_password_file")
    config["templates"] = [str(TEMPLATE)]
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for route in config["route"]["routes"]:
        route["repeat_interval"] = "1h"
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook
    path.write_text(yaml.safe_dump(config))


class Process:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.proc.args[0]} exited:\n{self.log.read_text()[-3000:]}")
        return True

    def stop(self) -> None:
        terminate(self.proc)


@dataclass
class Stack:
    sink: Sink
    daemon_port: int
    prometheus: str
    jar: Path
    env: dict[str, str]
    args: list[str]

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.daemon_port}"

    def daemon(self) -> Daemon:
        return Daemon(env=self.env, args=self.args, port=self.daemon_port).start()

    def mail(self, subject: str, timeout: float = 30) -> Mail:
        return wait_for(
            lambda: self.sink.find(subject),
            timeout=timeout,
            interval=0.1,
            what=f"mail {subject!r} (got {self.sink.subjects()})",
        )

    def scraped(self) -> bool:
        q = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": "up"}, timeout=5)
        return any(r["value"][1] == "1" for r in q.json()["data"]["result"])


@pytest.fixture
def stack(redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    work = Path(tempfile.mkdtemp(prefix="cs-alert-mail-"))
    sink = Sink()
    sink.controller.start()
    hooks = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    daemon_port, prom_port, am_port = free_port(), free_port(), free_port()
    rules_copy(work / "rules.yml")
    alertmanager_copy(work / "am.yml", sink.port, f"http://127.0.0.1:{hooks.server_port}/")
    (work / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(work / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "cookie-supervisor",
                        "static_configs": [{"targets": [f"127.0.0.1:{daemon_port}"]}],
                    }
                ],
            }
        )
    )
    am = Process(
        [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={work / 'am.yml'}",
            f"--storage.path={work / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        work / "alertmanager.log",
    )
    prom = Process(
        [
            binary("prometheus"),
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            # A firing alert is re-sent every 10 s and Alertmanager holds it 4 × that (EndsAt)
            # before resolving it on its own: with 1 s, a Prometheus stalled 4 s on a loaded
            # machine let a held alert lapse and mailed RESOLVED while the daemon was down (seen
            # once, test_logged_out_jar_resolution_survives_a_daemon_restart). New firings and
            # resolutions are still sent at the evaluation that finds them.
            "--rules.alert.resend-delay=10s",
            "--log.level=warn",
        ],
        work / "prometheus.log",
    )
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    # No grace for a missing file: the refresh job is asked at once, so the firing mail can
    # name it deterministically.
    cfg = source_config(tmp_path / "source.toml", jar, missing_grace="0s")
    env = daemon_env(redis_url, jar)
    env.pop("YT_DLP_COOKIES_FILE")
    env["COOKIE_SUPERVISOR_STATE_DIR"] = str(tmp_path / "state")
    s = Stack(sink, daemon_port, f"http://127.0.0.1:{prom_port}", jar, env, ["--config", str(cfg)])
    try:
        for p, port in ((am, am_port), (prom, prom_port)):
            wait_for(
                lambda p=p, port=port: (
                    p.alive()
                    and httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=2).status_code == 200
                ),
                timeout=30,
                what=f"{p.proc.args[0]} ready",
            )
        yield s
    finally:
        prom.stop()
        am.stop()
        sink.controller.stop()
        hooks.shutdown()
        shutil.rmtree(work, ignore_errors=True)


def check_body(stack: Stack, mail: Mail, status: str, summary: str, anchor: str) -> None:
    body = mail.body
    assert f"{status}: {summary}" in body, body
    assert f"Host:     {stack.instance}" in body, body
    assert "Source:   default" in body, body
    assert f"File:     {stack.jar}" in body, body
    link = f"http://{stack.instance}/runbook#{anchor}"
    assert f"Runbook:  {link}" in body, body


def test_missing_jar_mails_firing_then_resolved(stack: Stack) -> None:
    t0 = time.monotonic()
    d = stack.daemon()
    try:
        wait_for(stack.scraped, timeout=15, interval=0.2, what="Prometheus scrapes the daemon")
        stack.jar.unlink()
        firing = stack.mail(f"[FIRING] CookieFileMissing default on {stack.instance}")
        t_firing = firing.at - t0
        job = d.status()["refresh"]["pending_job"]
        assert job, d.status()
        check_body(
            stack, firing, "FIRING", "Cookie file of default is missing", "cookiefilemissing"
        )
        assert f"Refresh job {job} (missing_cookies): pending." in firing.body, firing.body
        assert "(file_present = 0)" in firing.body
        # No RESOLVED for the missing jar before it is back. (Prometheus starts before the
        # daemon, so CookieSupervisorMetricsAbsent, `for: 1s` here, may fire and resolve while
        # the daemon starts on a loaded machine: that is its job, not this alert's.)
        resolved = [
            s for s in stack.sink.subjects() if s.startswith("[RESOLVED] CookieFileMissing")
        ]
        assert not resolved, stack.sink.subjects()

        # The runbook link in the mail opens the alert's section, served by the daemon.
        page = httpx.get(f"http://{stack.instance}/runbook", timeout=5)
        assert page.status_code == 200 and 'id="cookiefilemissing"' in page.text

        write_atomic(stack.jar, cookie_jar())
        t_back = time.monotonic()
        resolved = stack.mail(f"[RESOLVED] CookieFileMissing default on {stack.instance}")
        check_body(
            stack, resolved, "RESOLVED", "Cookie file of default is missing", "cookiefilemissing"
        )
        assert "Resolved: " in resolved.body
        print(
            f"\nmissing jar: firing mail {t_firing:.1f} s after start, "
            f"resolved mail {resolved.at - t_back:.1f} s after the jar came back"
        )
    finally:
        d.stop()


def test_logged_out_jar_resolution_survives_a_daemon_restart(stack: Stack) -> None:
    """The issue's lost mail: a logged-out jar fixed while the daemon is down must still get its
    RESOLVED mail, and the daemon's silence must not send one before it is fixed."""
    t0 = time.monotonic()
    d = stack.daemon()
    try:
        wait_for(stack.scraped, timeout=15, interval=0.2, what="Prometheus scrapes the daemon")
        write_atomic(stack.jar, cookie_jar(login=False))
        firing = stack.mail(f"[FIRING] CookieJarLoggedOut default on {stack.instance}")
        t_firing = firing.at - t0
        check_body(
            stack, firing, "FIRING", "Cookies of default are logged out", "cookiejarloggedout"
        )
        assert "(logged_in = 0)" in firing.body
    finally:
        d.stop()
    down = stack.mail(f"[FIRING] CookieSupervisorDown on {stack.instance}")
    assert "Runbook:  http://" + stack.instance + "/runbook#cookiesupervisordown" in down.body
    # The daemon is silent, not fixed: its alert holds, no RESOLVED for the jar.
    assert not any(s.startswith("[RESOLVED] CookieJarLoggedOut") for s in stack.sink.subjects())
    write_atomic(stack.jar, cookie_jar())  # fixed while nobody watches
    t_restart = time.monotonic()
    d = stack.daemon()
    try:
        resolved = stack.mail(f"[RESOLVED] CookieJarLoggedOut default on {stack.instance}")
        check_body(
            stack, resolved, "RESOLVED", "Cookies of default are logged out", "cookiejarloggedout"
        )
        stack.mail(f"[RESOLVED] CookieSupervisorDown on {stack.instance}")
        firings = [s for s in stack.sink.subjects() if s.startswith("[FIRING] CookieJarLoggedOut")]
        assert len(firings) == 1, stack.sink.subjects()  # no second firing after the restart
        print(
            f"\nlogged-out jar: firing mail {t_firing:.1f} s after start, "
            f"resolved mail {resolved.at - t_restart:.1f} s after the restart"
        )
    finally:
        d.stop()
