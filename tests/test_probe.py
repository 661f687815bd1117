"""One validation run: real yt-dlp against a local server, and YouTube's texts via a stand-in."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest

from cookie_supervisor.classify import Reason
from cookie_supervisor.probe import FORMAT, detect_js_runtime, run_probe, ytdlp_args
from tests.support import ROOT, SECRET_MARK, MediaServer, cookie_jar, free_port

FAKE = [sys.executable, str(ROOT / "tests" / "fakes" / "fake_ytdlp.py")]
YOUTUBE = "https://www.youtube.com/watch?v=jNQXAC9IVRw"


def untouched(jar: Path) -> tuple[bytes, int]:
    return jar.read_bytes(), jar.stat().st_mtime_ns


async def test_real_ytdlp_cases(media: MediaServer, jar: Path) -> None:
    before = untouched(jar)
    closed = f"http://127.0.0.1:{free_port()}/video.mp4"
    cases = {
        "ok-download": run_probe(jar, media.url(), mode="download"),
        "ok-metadata": run_probe(jar, media.url(), mode="metadata"),
        "403": run_probe(jar, media.url("/forbidden.mp4")),
        "404": run_probe(jar, media.url("/missing.mp4")),
        "429": run_probe(jar, media.url("/ratelimit.mp4")),
        "closed": run_probe(jar, closed),
    }
    results = dict(zip(cases, await asyncio.gather(*cases.values()), strict=True))
    ok = results["ok-download"]
    assert ok.ok and ok.reason is None and ok.exit_code == 0 and ok.duration > 0, ok
    assert results["ok-metadata"].ok
    for name, reason, fixable in [
        ("403", Reason.FORBIDDEN, True),
        ("404", Reason.UNAVAILABLE, False),
        ("429", Reason.RATE_LIMITED, False),
        ("closed", Reason.NETWORK_ERROR, False),
    ]:
        r = results[name]
        assert not r.ok and r.reason is reason and r.fixable is fixable and r.exit_code == 1, (
            name,
            r,
        )
        assert r.message.startswith("ERROR:"), r.message
    # download mode fetched the first 10 KiB of the media; metadata mode fetched no range
    ranges = [h.get("Range") for path, h in media.requests if path == "/video.mp4"]
    assert "bytes=0-10240" in ranges
    assert untouched(jar) == before  # yt-dlp rewrote its copy, never the production file


async def test_media_403_in_download_mode_is_forbidden(jar: Path) -> None:
    """The page is fine, the media is refused: only download mode can see it."""
    gate = MediaServer(require_cookie="session=never")
    try:
        r = await run_probe(jar, gate.url(), mode="download")
        assert r.reason is Reason.FORBIDDEN and r.fixable
    finally:
        gate.shutdown()


async def test_hung_server_is_killed_at_the_timeout(media: MediaServer, jar: Path) -> None:
    start = time.monotonic()
    r = await run_probe(jar, media.url("/hang.mp4"), timeout=1.5)
    took = time.monotonic() - start
    assert r.reason is Reason.TIMEOUT and not r.fixable and r.exit_code is None
    assert 1.5 <= took < 4, took


async def test_process_group_is_killed_and_reaped(
    jar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    r = await run_probe(jar, "http://127.0.0.1:1/x", timeout=1.0, command=[*FAKE, "hang"])
    assert r.reason is Reason.TIMEOUT
    pids = json.loads(record.read_text())
    assert not Path(f"/proc/{pids['pid']}").exists()  # killed and reaped: no zombie
    grandchild = Path(f"/proc/{pids['child']}/stat")
    # the grandchild died with its group; as an orphan it is reaped by init, not by us
    assert not grandchild.exists() or grandchild.read_text().split(") ")[1][0] == "Z"


async def test_cancellation_kills_the_child(
    jar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    task = asyncio.create_task(
        run_probe(jar, "http://127.0.0.1:1/x", timeout=60, command=[*FAKE, "hang"])
    )
    while not record.exists():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not Path(f"/proc/{json.loads(record.read_text())['pid']}").exists()


@pytest.mark.parametrize(
    ("scenario", "ok", "reason", "account"),
    [
        ("ok", True, None, True),
        ("bot", False, Reason.BOT_DETECTION, True),
        ("rotated", False, Reason.COOKIES_ROTATED, True),  # exit 0, but the session is gone
        ("age", False, Reason.AUTH_REQUIRED, False),
        ("ratelimit", False, Reason.RATE_LIMITED, True),
        ("nojs", False, Reason.NO_JS_RUNTIME, False),
        ("silent_fail", False, Reason.OTHER, False),
    ],
)
async def test_youtube_texts(
    jar: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    scenario: str,
    ok: bool,
    reason: Reason | None,
    account: bool,
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    before = untouched(jar)
    r = await run_probe(jar, YOUTUBE, command=[*FAKE, scenario], js_runtime="node")
    assert (r.ok, r.reason, r.account_cookies) == (ok, reason, account), r
    seen = json.loads(record.read_text())
    copy = seen["args"][seen["args"].index("--cookies") + 1]
    assert copy != str(jar) and seen["mode"] == "0o600"  # a private copy, 0600...
    assert not Path(copy).exists() and not Path(copy).parent.exists()  # ...gone afterwards
    assert "--no-warnings" not in seen["args"] and "-v" in seen["args"]
    assert seen["args"][seen["args"].index("--js-runtimes") + 1] == "node"
    assert untouched(jar) == before


async def test_no_cookie_value_in_the_result(jar: Path) -> None:
    r = await run_probe(jar, YOUTUBE, command=[*FAKE, "leaky"], js_runtime="node")
    assert r.reason is Reason.FORBIDDEN
    assert SECRET_MARK not in repr(r) and "Cookie: [redacted]" in r.message


async def test_missing_file_and_missing_js_runtime_need_no_child(tmp_path: Path) -> None:
    missing = await run_probe(
        tmp_path / "none.txt", "http://127.0.0.1:1/x", command=["/nonexistent"]
    )
    assert missing.reason is Reason.MISSING_COOKIES and missing.exit_code is None
    jar = tmp_path / "c.txt"
    jar.write_text(cookie_jar())
    nojs = await run_probe(jar, YOUTUBE, js_runtime=None, command=["/nonexistent"])
    assert nojs.reason is Reason.NO_JS_RUNTIME and not nojs.fixable


def test_arguments() -> None:
    args = ytdlp_args(Path("/tmp/c.txt"), YOUTUBE, "download", "node", None)
    assert args[-2:] == ["--", YOUTUBE]
    assert args[args.index("--simulate") :][:4] == ["--simulate", "--check-formats", "-f", FORMAT]
    meta = ytdlp_args(Path("/tmp/c.txt"), YOUTUBE, "metadata", None, Path("/cache"))
    assert "--check-formats" not in meta and "--js-runtimes" not in meta
    assert meta[meta.index("--cache-dir") + 1] == "/cache"


def test_js_runtime_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert detect_js_runtime("none") is None
    assert detect_js_runtime("node") == "node"  # Node.js is on this machine
    assert detect_js_runtime("no-such-runtime") is None
    fake = tmp_path / "deno"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert detect_js_runtime("auto") == "deno"  # deno first, as yt-dlp prefers it
