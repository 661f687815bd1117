"""The command line, as cron, a monitoring check or an operator would run it: against a real daemon."""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

from cookie_supervisor import __version__, cli
from cookie_supervisor.config import ENV_PREFIX, ConfigError, Settings
from cookie_supervisor.discovery import base_url, daemon_settings, find_daemon, read_env_file
from tests.support import (
    SECRET_MARK,
    Daemon,
    MediaServer,
    RedisServer,
    cookie_jar,
    daemon_env,
    free_port,
    wait_for,
    write_atomic,
)

TOKEN = f"tok-{SECRET_MARK}-api"
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # The caller's own COOKIE_SUPERVISOR_* variables must not leak into what is being tested.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    return subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", *args],
        env={**inherited, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def env_file(path: Path, port: int, token: str | None = TOKEN) -> Path:
    lines = [
        "# as /etc/cookie-supervisor/cookie-supervisor.env",
        f"{ENV_PREFIX}LISTEN=127.0.0.1:{port}",
    ]
    if token is not None:
        lines.append(f'{ENV_PREFIX}API_TOKEN="{token}"')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def daemon(redis_url: str, jar: Path, tmp_path: Path) -> Iterator[Daemon]:
    """A daemon with a token and two sources: `default` (healthy) and `alt` (logged out)."""
    alt = tmp_path / "alt.txt"
    write_atomic(alt, cookie_jar(login=False))
    config = tmp_path / "sources.toml"
    config.write_text(f'[[sources]]\nname = "alt"\ncookies_file = "{alt}"\nvalidation_urls = []\n')
    env = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_CONFIG=str(config),
        COOKIE_SUPERVISOR_API_TOKEN=TOKEN,
    )
    d = Daemon(env).start()
    yield d
    d.stop()


def test_client_commands_show_the_daemons_state(
    daemon: Daemon, redis_url: str, tmp_path: Path
) -> None:
    found = ["--env-file", str(env_file(tmp_path / "cs.env", daemon.port))]
    wait_for(lambda: daemon.status("alt").get("last_validation"), what="alt's first validation")

    status = run_cli("status", *found)
    assert status.returncode == 0, status.stderr
    assert f"daemon {daemon.base_url}: queue cookie-refresh:" in status.stdout
    assert re.search(rf"last validation\s+ok {ISO} \(", status.stdout)
    assert re.search(rf"login expires\s+{ISO} \(in 180 d\)", status.stdout)
    assert re.search(r"last validation\s+FAIL logged_out", status.stdout)  # alt
    view = json.loads(run_cli("status", "--json", *found).stdout)
    assert view["redis_up"] is True
    assert [s["source"] for s in view["sources"]] == ["default", "alt"]

    check = run_cli("check", *found)
    assert check.returncode == 1, check.stderr  # the worst source wins: alt is logged out
    assert check.stdout.splitlines()[0].startswith("default: OK")
    assert check.stdout.splitlines()[1].startswith("alt: FAIL logged_out")
    assert run_cli("check", "--source", "default", *found).returncode == 0
    [alt] = json.loads(run_cli("check", "--source", "alt", "--json", *found).stdout)
    assert alt["reason"] == "logged_out" and alt["fixable"] is True

    validate = run_cli("validate", "--source", "alt", *found)
    assert validate.returncode == 1 and validate.stdout.startswith("alt: FAIL logged_out")
    ok = run_cli("validate", "--json", *found)
    assert ok.returncode == 0 and json.loads(ok.stdout)["source"] == "default"

    first = run_cli("trigger", "--reason", "manual", *found)
    assert first.returncode == 0, first.stderr
    job = re.search(r"^default: enqueued manual \(job (\d+)\): daemon says: ", first.stdout)
    assert job, first.stdout
    data = redis.Redis.from_url(redis_url).hget(f"bull:cookie-refresh:{job[1]}", "data")
    assert json.loads(data or b"{}")["source"] == "default"
    again = json.loads(run_cli("trigger", "--reason", "expired", "--json", *found).stdout)
    assert again["state"] == "coalesced" and again["job_id"] == job[1]
    assert re.search(rf"pending job\s+{job[1]}\n", run_cli("status", *found).stdout)

    unfixable = run_cli("trigger", "--reason", "forbidden", "--error", "HTTP Error 404", *found)
    assert unfixable.returncode == 2 and "ignored unavailable" in unfixable.stdout

    everything = status.stdout + status.stderr + check.stdout + first.stdout + first.stderr
    assert SECRET_MARK not in everything and TOKEN not in everything


def test_token_and_source_refusals_are_one_line(daemon: Daemon, tmp_path: Path) -> None:
    wrong = ["--env-file", str(env_file(tmp_path / "wrong.env", daemon.port, token="nope"))]
    out = run_cli("trigger", "--reason", "manual", *wrong)
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.splitlines()
    assert "answered 401" in line and f"{ENV_PREFIX}API_TOKEN" in line
    right = ["--env-file", str(env_file(tmp_path / "cs.env", daemon.port))]
    unknown = run_cli("status", "--source", "nope", *right)
    assert unknown.returncode == 2 and len(unknown.stderr.splitlines()) == 1
    assert "unknown source" in unknown.stderr
    # `check` is a monitoring plugin: no verdict is UNKNOWN (3), said on stdout too.
    check = run_cli("check", "--source", "nope", *right)
    assert check.returncode == 3 and check.stdout.startswith("UNKNOWN: "), check
    assert len(check.stdout.splitlines()) == 1 and len(check.stderr.splitlines()) == 1
    # The environment wins over the file, and --url over both.
    moved = run_cli("status", "--url", daemon.base_url, env={f"{ENV_PREFIX}LISTEN": "127.0.0.1:1"})
    assert moved.returncode == 0, moved.stderr


def test_trigger_with_redis_down_shows_the_daemons_answer(
    own_redis: RedisServer, jar: Path, tmp_path: Path
) -> None:
    env = daemon_env(own_redis.url, jar, COOKIE_SUPERVISOR_REDIS_BACKOFF_MAX="0.2")
    daemon = Daemon(env).start()
    try:
        found = ["--env-file", str(env_file(tmp_path / "cs.env", daemon.port, token=None))]
        own_redis.stop()
        out = run_cli("trigger", "--reason", "manual", *found)
        assert out.returncode == 1, out.stderr
        # The promise to enqueue later is the daemon's, and the CLI says whose it is.
        assert out.stdout.startswith("default: deferred manual: daemon says: ")
        status = run_cli("status", *found)
        assert status.returncode == 1 and "Redis down" in status.stdout
        assert re.search(r"refresh owed\s+manual", status.stdout)
        own_redis.start()
        r = redis.Redis.from_url(own_redis.url)
        data = wait_for(lambda: r.hget("bull:cookie-refresh:1", "data"), timeout=10)
        assert json.loads(data or b"{}")["reason"] == "manual"  # the daemon kept its word
    finally:
        daemon.stop()


@pytest.fixture
def call(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """The CLI in this process (no daemon involved): exit code, stdout, stderr."""
    for key in list(os.environ):
        if key.startswith(ENV_PREFIX):
            monkeypatch.delenv(key)

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse: --help, bad usage
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_no_daemon_is_one_line_naming_the_url(
    call: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    found = ["--url", url, "--env-file", str(env_file(tmp_path / "e", 1))]
    for args in (["status"], ["check"], ["validate"], ["trigger", "--reason", "manual"]):
        code, out, err = call(*args, *found)
        if args == ["check"]:  # a monitoring plugin: UNKNOWN, on stdout for the monitoring system
            assert code == 3 and out.startswith(f"UNKNOWN: no daemon answers at {url}"), out
            assert out.count("\n") == 1
        else:
            assert code == 1 and out == "", args
        [line] = err.splitlines()
        assert line.startswith(f"cookie-supervisor: no daemon answers at {url}"), line


def test_listen_comes_from_the_env_file(
    call: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    port = free_port()
    code, _, err = call("status", "--env-file", str(env_file(tmp_path / "e", port)))
    assert code == 1 and f"http://127.0.0.1:{port}" in err
    code, _, err = call("status", "--env-file", str(tmp_path / "none.env"))
    assert code == 2 and "none.env" in err
    code, _, err = call("status", "--url", "file:///etc/passwd")
    assert code == 2 and "--url" in err


def test_trigger_reason_must_be_known(call: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = call("trigger", "--reason", "because", "--url", "http://127.0.0.1:1")
    assert code == 2 and "invalid choice: 'because'" in err
    assert "network_error" not in cli.TRIGGER_REASONS and "manual" in cli.TRIGGER_REASONS


def test_run_help_lists_the_environment(call: Callable[..., tuple[int, str, str]]) -> None:
    code, out, _ = call("run", "--help")
    assert code == 0
    names = re.findall(r"^  ([A-Z_]+)\s", out, re.MULTILINE)
    assert {"REDIS_URL", "YT_DLP_COOKIES_FILE", "COOKIE_SUPERVISOR_API_TOKEN"} <= set(names)
    assert "COOKIE_SUPERVISOR_LISTEN" in names and "COOKIE_SUPERVISOR_VALIDATE_EVERY" in names
    settable = {n for n in Settings.model_fields if n not in ("sources", "webhooks")}
    assert len(names) == len(settable)
    assert re.search(r"COOKIE_SUPERVISOR_JOB_BACKOFF\s+1m\n      job_backoff: \w", out)
    # Every setting says what it is, under its TOML key (the model's field docstrings).
    assert all(field.description for field in Settings.model_fields.values())
    keys = re.findall(r"^      ([a-z_]+): \S", out, re.MULTILINE)
    assert set(keys) == settable


def test_every_command_and_option_has_help() -> None:
    parser = cli._parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    helps = {c.dest: c.help for c in sub._choices_actions}
    assert set(helps) == set(sub.choices) and all(helps.values())
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_version(call: Callable[..., tuple[int, str, str]]) -> None:
    out = run_cli("--version")  # the installed entry point, once
    assert out.returncode == 0 and out.stdout.strip() == f"cookie-supervisor {__version__}"
    assert call("version") == (0, f"cookie-supervisor {__version__}\n", "")


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/video.mp4", 0, None),
        ("/forbidden.mp4", 1, "forbidden"),
        ("/missing.mp4", 2, "unavailable"),
    ],
)
def test_check_local_exit_codes(
    media: MediaServer, jar: Path, path: str, code: int, reason: str | None
) -> None:
    env = {
        "YT_DLP_COOKIES_FILE": str(jar),
        "COOKIE_SUPERVISOR_VALIDATION_URLS": media.url(path),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}",
    }  # no daemon, no Redis: --local needs neither
    out = run_cli("check", "--local", "--json", env=env)
    assert out.returncode == code, out.stderr
    result = json.loads(out.stdout)
    assert (
        result["ok"] is (code == 0) and result["reason"] == reason and result["source"] == "default"
    )
    if reason == "unavailable":
        plain = run_cli("check", "--local", env=env)
        assert plain.returncode == code and plain.stdout.startswith(f"default: FAIL {reason}")


def test_check_local_offline_failures(tmp_path: Path, redis_url: str) -> None:
    env = {
        "YT_DLP_COOKIES_FILE": str(tmp_path / "none.txt"),
        "COOKIE_SUPERVISOR_VALIDATION_URLS": "none",
    }
    out = run_cli("check", "--local", env=env)
    assert out.returncode == 1 and "FAIL missing_cookies" in out.stdout
    assert run_cli("check", "--local", "--source", "nope", env=env).returncode == 3  # UNKNOWN
    # A check changes nothing: a logged-out jar with Redis reachable enqueues no refresh job,
    # and the daemon's state file is not written.
    logged_out = tmp_path / "out.txt"
    write_atomic(logged_out, cookie_jar(login=False))
    state = tmp_path / "state"
    env.update(
        YT_DLP_COOKIES_FILE=str(logged_out),
        REDIS_URL=redis_url,
        COOKIE_SUPERVISOR_STATE_DIR=str(state),
    )
    out = run_cli("check", "--local", env=env)
    assert out.returncode == 1 and "FAIL logged_out" in out.stdout
    assert redis.Redis.from_url(redis_url).dbsize() == 0
    assert not state.exists() or not any(state.iterdir())


def test_inspect_shows_iso_and_relative_times(jar: Path, tmp_path: Path) -> None:
    out = run_cli("inspect", str(jar))
    assert out.returncode == 0
    assert re.search(rf"^login_expires_at\s+\d+  \({ISO} \(in 180 d\)\)$", out.stdout, re.M)
    assert re.search(rf"^mtime\s+\d+  \({ISO} \((now|\d+ s ago)\)\)$", out.stdout, re.M)
    assert SECRET_MARK not in out.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("garbage\n")
    out = run_cli("inspect", "--json", str(bad))
    assert out.returncode == 1 and json.loads(out.stdout)["problem"] == "corrupt_cookies"


def test_times_and_addresses() -> None:
    now = time.time()
    assert cli.relative_time(180 * 86400 - 5) == "in 180 d"
    assert cli.relative_time(-3 * 3600) == "3 h ago"
    assert cli.relative_time(-42) == "42 s ago" and cli.relative_time(0.2) == "now"
    assert cli.relative_time(600) == "in 10 min"
    assert cli.when(0, now).startswith("1970-01-01T00:00:00Z (")
    assert cli.when(None, now) == "-"
    assert base_url("0.0.0.0:9479") == "http://127.0.0.1:9479"
    assert base_url("[::]:9479") == "http://[::1]:9479"
    assert base_url("10.0.0.5:80") == "http://10.0.0.5:80"


def test_the_cli_has_no_http_code_of_its_own() -> None:
    # Issue 15: one client of the daemon's API. The CLI speaks HTTP only through client.py's
    # DaemonClient, so a bound or a defence added there holds for every command.
    tree = ast.parse(Path(cli.__file__).read_text())
    imported = {
        alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
    }
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    http = {"socket", "ssl", "http", "urllib", "httpx", "requests", "aiohttp", "h11", "uvicorn"}
    assert not {m for m in imported if m.split(".")[0] in http}, imported
    assert "cookie_supervisor.client" in imported
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not names & {"open_connection", "create_connection", "urlopen", "getresponse"}


def test_the_daemon_is_found_where_the_service_reads_its_settings(tmp_path: Path) -> None:
    path = env_file(tmp_path / "e", 7001, token="from-file")
    assert find_daemon(None, path, {}) == ("http://127.0.0.1:7001", "from-file")
    environ = {f"{ENV_PREFIX}LISTEN": "[::]:7002", f"{ENV_PREFIX}API_TOKEN": "from-env"}
    assert find_daemon(None, path, environ) == ("http://[::1]:7002", "from-env")
    assert find_daemon("https://d.example/cs/", path, environ) == (
        "https://d.example/cs",
        "from-env",
    )
    with pytest.raises(ConfigError, match="--url"):
        find_daemon("ftp://d.example", path, {})


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / "e"
    path.write_text("# comment\n; also\n\nA=1\nB = 'two words'\nC=\"x=y\"\nnonsense\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "x=y"}
    toml = tmp_path / "c.toml"
    toml.write_text('listen = "127.0.0.1:7000"\napi_token = "t"\n')
    values = daemon_settings(path, {f"{ENV_PREFIX}CONFIG": str(toml)})
    assert values[f"{ENV_PREFIX}LISTEN"] == "127.0.0.1:7000"
    env = {f"{ENV_PREFIX}CONFIG": str(toml), f"{ENV_PREFIX}LISTEN": "127.0.0.1:8000"}
    assert daemon_settings(path, env)[f"{ENV_PREFIX}LISTEN"] == "127.0.0.1:8000"


def test_daemon_status_renders_missing_keys() -> None:
    # An older or newer daemon may send fewer keys: nothing crashes, absent shows as '-'.
    lines = cli.source_lines({"source": "x"}, time.time())
    assert lines[0] == "x:" and all(line.endswith("-") or "none yet" in line for line in lines[1:])
    # The verdict is the daemon's (views.verdict, judged in tests/test_views.py); the CLI prints
    # it. A status that carries none (a daemon older than the CLI) is no verdict: UNKNOWN.
    assert cli.verdict({"source": "x"}).exit_code == 3
    assert cli.verdict({"source": "x", "verdict": {"ok": True}}).ok
    not_a_file = {"ok": False, "reason": "not_a_file", "fixable": False}
    assert cli.verdict({"source": "x", "verdict": not_a_file}).exit_code == 2
    missing = {"ok": False, "reason": "missing_cookies", "fixable": True}
    assert cli.verdict({"source": "x", "verdict": missing}).exit_code == 1
    assert cli.verdict({"source": "x", "verdict": "garbage"}).exit_code == 3
    backoff = {"source": "x", "refresh": {"backoff_until": time.time() + 3 * 3600}}
    assert any(
        re.search(r"backoff until\s+\S+ \(in 3 h\)", line)
        for line in cli.source_lines(backoff, time.time())
    )


# --- `check` as a monitoring plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN -------------------


class _Canned(BaseHTTPRequestHandler):
    """A stand-in for a daemon that answers one canned (status, body) whatever is asked."""

    answer: tuple[int, bytes] = (200, b"{}")

    def do_GET(self) -> None:
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[Callable[[int, bytes], str]]:
    """`canned(status, body)` → the URL of a server answering that."""
    servers: list[ThreadingHTTPServer] = []

    def serve(status: int, body: bytes) -> str:
        handler = type("Handler", (_Canned,), {"answer": (status, body)})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (429, b'{"success": false, "error": "rate limit exceeded"}', "answered 429"),
        (503, b'{"success": false, "error": "starting"}', "answered 503"),
        (500, b'{"success": false, "error": "internal error"}', "answered 500"),
        (200, b"<html>a proxy's page</html>", "without JSON"),
        (200, b"[1, 2]", "unexpected JSON"),
        (200, b'{"sources": "all fine"}', "without a list of sources"),
        (200, b'{"sources": [1]}', "without a list of sources"),
    ],
)
def test_check_without_a_verdict_is_unknown(
    call: Callable[..., tuple[int, str, str]],
    canned: Callable[[int, bytes], str],
    tmp_path: Path,
    status: int,
    body: bytes,
    said: str,
) -> None:
    url = canned(status, body)
    code, out, err = call("check", "--url", url, "--env-file", str(env_file(tmp_path / "e", 1)))
    assert code == 3, (out, err)
    assert out.startswith("UNKNOWN: ") and said in out and out.count("\n") == 1, out
    assert len(err.splitlines()) == 1
    code, out, _ = call("check", "--json", "--url", url, "--env-file", str(tmp_path / "e"))
    assert code == 3 and json.loads(out)["state"] == "unknown"


def test_check_exit_codes_follow_the_daemons_verdicts(
    call: Callable[..., tuple[int, str, str]], canned: Callable[[int, bytes], str], tmp_path: Path
) -> None:
    def sources(*states: dict[str, object]) -> str:
        return canned(200, json.dumps({"success": True, "sources": list(states)}).encode())

    # The verdicts as the daemon serves them (views.verdict, judged in tests/test_views.py).
    ok = {"source": "a", "problem": None, "last_validation": {"ok": True}, "verdict": {"ok": True}}
    fixable = {
        "source": "b",
        "problem": "logged_out",
        "verdict": {"ok": False, "reason": "logged_out", "fixable": True},
    }
    unfixable = {
        "source": "c",
        "last_validation": {"ok": False, "reason": "ip_flagged"},
        "verdict": {"ok": False, "reason": "ip_flagged", "fixable": False},
    }
    unread = {
        "source": "d",
        "read_error": "EMFILE",
        "verdict": {"ok": False, "reason": "read_error EMFILE", "unknown": True},
    }
    found = ["--env-file", str(env_file(tmp_path / "e", 1))]
    for states, code in [
        ((ok,), 0),
        ((ok, fixable), 1),
        ((ok, unfixable), 2),
        ((unread,), 3),
        ((fixable, unread), 3),  # no verdict on one source outranks a warning on another
        ((unread, unfixable, fixable), 2),  # and a critical one outranks both
        ((), 0),
    ]:
        got, out, _ = call("check", "--url", sources(*states), *found)
        assert got == code, (states, out)
        assert len(out.splitlines()) == len(states)
    _, out, _ = call("check", "--url", sources(unread), *found)
    assert out.startswith("d: UNKNOWN read_error EMFILE")
    assert cli.worst([]) == 0 and cli.worst([1, 3, 0]) == 3 and cli.worst([3, 2, 1]) == 2


def test_check_usage_errors_are_unknown(call: Callable[..., tuple[int, str, str]]) -> None:
    code, _, err = call("check", "--bogus")
    assert code == 3 and "unrecognized arguments: --bogus" in err
    code, out, _ = call("check", "--url", "file:///etc/passwd")
    assert code == 3 and out.startswith("UNKNOWN: configuration error: --url")
    code, _, _ = call("status", "--bogus")
    assert code == 2  # the other commands keep argparse's 2


def test_check_local_reads_the_env_file(jar: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.txt"
    service_env = tmp_path / "svc.env"
    service_env.write_text(
        f"YT_DLP_COOKIES_FILE={missing}\n"
        "COOKIE_SUPERVISOR_VALIDATION_URLS=none\n"
        f"REDIS_URL=redis://127.0.0.1:{free_port()}\n"
    )
    out = run_cli("check", "--local", "--json", "--env-file", str(service_env))
    assert out.returncode == 1, out.stderr
    answer = json.loads(out.stdout)
    assert answer["reason"] == "missing_cookies"  # the file named it: nothing else does
    # The environment wins over the file, as it does for the service.
    out = run_cli(
        "check", "--local", "--env-file", str(service_env), env={"YT_DLP_COOKIES_FILE": str(jar)}
    )
    assert out.returncode == 0 and out.stdout.startswith("default: OK"), out.stdout + out.stderr
    # An empty variable in the environment does not hide the file's value.
    out = run_cli(
        "check", "--local", "--env-file", str(service_env), env={"YT_DLP_COOKIES_FILE": ""}
    )
    assert out.returncode == 1 and "FAIL missing_cookies" in out.stdout
    # A bad setting in the file is named with where it came from, and is no verdict.
    service_env.write_text(f"YT_DLP_COOKIES_FILE={jar}\nCOOKIE_SUPERVISOR_VALIDATE_EVERY=often\n")
    out = run_cli("check", "--local", "--env-file", str(service_env))
    assert out.returncode == 3, out
    assert "COOKIE_SUPERVISOR_VALIDATE_EVERY (environment file): invalid duration" in out.stdout
    service_env.write_text(f"YT_DLP_COOKIES_FILE={jar}\nCOOKIE_SUPERVISOR_VALIDATE_EVRY=1h\n")
    out = run_cli("check", "--local", "--env-file", str(service_env))
    assert out.returncode == 3 and "did you mean COOKIE_SUPERVISOR_VALIDATE_EVERY?" in out.stdout


def test_inspect_exit_codes(jar: Path, tmp_path: Path) -> None:
    logged_out = tmp_path / "out.txt"
    write_atomic(logged_out, cookie_jar(login=False))
    expired = tmp_path / "expired.txt"
    write_atomic(expired, cookie_jar(expires=int(time.time()) - 3600))
    for path, code, problem in [
        (jar, 0, None),
        (logged_out, 1, "logged_out"),
        (expired, 1, "expired"),
        (tmp_path / "none.txt", 1, "missing_cookies"),
        (tmp_path, 2, "not_a_file"),
    ]:
        out = run_cli("inspect", "--json", str(path))
        assert out.returncode == code, (path, out.stdout, out.stderr)
        assert json.loads(out.stdout)["problem"] == problem
