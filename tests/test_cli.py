"""The command line, as cron, a Nagios check or an operator would run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from cookie_supervisor import __version__
from tests.support import SECRET_MARK, MediaServer, free_port


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    for args in (["--version"], ["version"]):
        out = cli(*args)
        assert out.returncode == 0 and out.stdout.strip() == f"cookie-supervisor {__version__}"


@pytest.mark.parametrize(
    ("path", "code", "reason"),
    [
        ("/video.mp4", 0, None),
        ("/forbidden.mp4", 1, "forbidden"),
        ("/missing.mp4", 2, "unavailable"),
    ],
)
def test_check_exit_codes(
    media: MediaServer, jar: Path, path: str, code: int, reason: str | None
) -> None:
    env = {
        "YT_DLP_COOKIES_FILE": str(jar),
        "COOKIE_SUPERVISOR_VALIDATION_URLS": media.url(path),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}",
    }  # check never needs Redis
    out = cli("check", "--json", env=env)
    assert out.returncode == code, out.stderr
    result = json.loads(out.stdout)
    assert (
        result["ok"] is (code == 0) and result["reason"] == reason and result["source"] == "default"
    )
    plain = cli("check", env=env)
    assert plain.returncode == code and plain.stdout.startswith("default: ")


def test_check_offline_failures(tmp_path: Path) -> None:
    env = {
        "YT_DLP_COOKIES_FILE": str(tmp_path / "none.txt"),
        "COOKIE_SUPERVISOR_VALIDATION_URLS": "",
    }
    out = cli("check", env=env)
    assert out.returncode == 1 and "FAIL missing_cookies" in out.stdout
    assert cli("check", "--source", "nope", env=env).returncode == 2


def test_trigger_and_status_go_straight_to_redis(redis_url: str, jar: Path) -> None:
    env = {
        "YT_DLP_COOKIES_FILE": str(jar),
        "REDIS_URL": redis_url,
        "COOKIE_SUPERVISOR_VALIDATION_URLS": "",
    }
    first = cli("trigger", "--reason", "manual", env=env)
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert (
        answer["state"] == "enqueued" and answer["reason"] == "manual" and answer["job_id"] == "1"
    )
    again = json.loads(cli("trigger", "--reason", "bot_detection", env=env).stdout)
    assert again["state"] == "coalesced" and again["job_id"] == "1"
    unfixable = json.loads(
        cli("trigger", "--reason", "x", "--error", "HTTP Error 404: Not Found", env=env).stdout
    )
    assert unfixable["state"] == "ignored" and unfixable["reason"] == "unavailable"
    data = json.loads(redis.Redis.from_url(redis_url).hget("bull:cookie-refresh:1", "data") or b"")
    assert data["origin"] == "cli" and data["source"] == "default"
    status = cli("status", "--json", env=env)
    assert status.returncode == 0
    view = json.loads(status.stdout)
    assert view["redis_up"] is True and view["counts"]["waiting"] == 1
    [source] = view["sources"]
    assert source["refresh"]["pending_job"] == "1" and source["logged_in"] is True
    assert SECRET_MARK not in status.stdout
    text = cli("status", env=env)
    assert "queue cookie-refresh: waiting=1" in text.stdout and "pending_job=1" in text.stdout


def test_trigger_with_redis_down_exits_1(jar: Path) -> None:
    env = {"YT_DLP_COOKIES_FILE": str(jar), "REDIS_URL": f"redis://127.0.0.1:{free_port()}"}
    out = cli("trigger", "--reason", "manual", env=env)
    assert out.returncode == 1 and json.loads(out.stdout)["state"] == "deferred"
    assert cli("status", env=env).returncode == 1


def test_inspect_exit_codes(jar: Path, tmp_path: Path) -> None:
    assert cli("inspect", str(jar)).returncode == 0
    bad = tmp_path / "bad.txt"
    bad.write_text("garbage\n")
    out = cli("inspect", "--json", str(bad))
    assert out.returncode == 1 and json.loads(out.stdout)["problem"] == "corrupt_cookies"
