"""One validation run: real yt-dlp against a local server, and YouTube's texts via a stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yt_dlp.version

from cookie_supervisor import probe
from cookie_supervisor.classify import Reason, diagnose
from cookie_supervisor.probe import (
    ACCOUNT_CHECK_URL,
    COPY_PREFIX,
    FORMAT,
    default_account_check_url,
    detect_js_runtime,
    run_account_check,
    run_probe,
    sweep_stale_copies,
    ytdlp_args,
    ytdlp_version,
)
from tests.support import (
    ROOT,
    SECRET_MARK,
    MediaServer,
    cookie_jar,
    free_port,
    wait_for,
    write_atomic,
)

FAKE = [sys.executable, str(ROOT / "tests" / "fakes" / "fake_ytdlp.py")]
YOUTUBE = "https://www.youtube.com/watch?v=jNQXAC9IVRw"


def untouched(jar: Path) -> tuple[bytes, int]:
    return jar.read_bytes(), jar.stat().st_mtime_ns


async def test_real_ytdlp_cases(media: MediaServer, tmp_path: Path) -> None:
    # a jar that also holds the cookie the gated server wants: the diagnosis run lacks it
    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar(extra_lines=("127.0.0.1\tFALSE\t/\tFALSE\t0\tgate\topen",)))
    gate, never = MediaServer(require_cookie="gate=open"), MediaServer(require_cookie="gate=never")
    before = untouched(jar)
    closed = f"http://127.0.0.1:{free_port()}/video.mp4"
    cases = {
        "ok-download": run_probe(jar, media.url(), mode="download"),
        "ok-metadata": run_probe(jar, media.url(), mode="metadata"),
        "403": run_probe(jar, media.url("/forbidden.mp4")),
        "403-without": run_probe(jar, media.url("/forbidden.mp4"), cookies=False),
        "404": run_probe(jar, media.url("/missing.mp4")),
        "429": run_probe(jar, media.url("/ratelimit.mp4")),
        "closed": run_probe(jar, closed),
        "gate": run_probe(jar, gate.url()),
        "gate-without": run_probe(jar, gate.url(), cookies=False),
        "never": run_probe(jar, never.url(), mode="download"),
        "account": run_account_check(jar, media.url("/video.mp4?account")),
        "account-404": run_account_check(jar, media.url("/missing.mp4")),
    }
    try:
        results = dict(zip(cases, await asyncio.gather(*cases.values()), strict=True))
    finally:
        gate.shutdown()
        never.shutdown()
    ok = results["ok-download"]
    assert ok.ok and ok.reason is None and ok.exit_code == 0 and ok.duration > 0, ok
    assert ok.with_cookies and ok.check == "media"
    assert results["ok-metadata"].ok
    for name, reason, fixable in [
        ("403", Reason.FORBIDDEN, True),
        ("404", Reason.UNAVAILABLE, False),
        ("429", Reason.RATE_LIMITED, False),
        ("closed", Reason.NETWORK_ERROR, False),
        ("never", Reason.FORBIDDEN, True),  # the page is fine, the media is refused
        ("gate-without", Reason.FORBIDDEN, True),
        ("account-404", Reason.UNAVAILABLE, False),  # a wrong URL is not a logged-out session
    ]:
        r = results[name]
        assert not r.ok and r.reason is reason and r.fixable is fixable and r.exit_code == 1, (
            name,
            r,
        )
        assert r.message.startswith("ERROR:"), r.message
    # the diagnosis run: the same 403 as a guest points away from the cookies; a guest refused
    # where the cookies pass needs no diagnosis
    without = results["403-without"]
    assert not without.with_cookies and without.reason is Reason.FORBIDDEN
    assert diagnose(results["403"].reason, without.reason) is Reason.IP_FLAGGED
    assert results["gate"].ok and diagnose(results["gate"].reason, Reason.FORBIDDEN) is None
    account = results["account"]
    assert account.ok and account.check == "account", account
    # download mode fetched the first 10 KiB of the media; the account check fetched no media
    ranges = [h.get("Range") for path, h in media.requests if path == "/video.mp4"]
    assert "bytes=0-10240" in ranges
    assert [h.get("Range") for path, h in media.requests if path.endswith("?account")] == [None]
    assert untouched(jar) == before  # yt-dlp rewrote its copy, never the production file


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
    copies = tmp_path / "copies"
    copies.mkdir()
    task = asyncio.create_task(
        run_probe(jar, "http://127.0.0.1:1/x", timeout=60, command=[*FAKE, "hang"], copy_dir=copies)
    )
    while not record.exists():
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not Path(f"/proc/{json.loads(record.read_text())['pid']}").exists()
    assert list(copies.iterdir()) == []  # the private copy went too


async def test_cancellation_while_copying_leaves_no_copy(jar: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    for _ in range(20):  # cancel at every early await: the setup thread, just after
        task = asyncio.create_task(run_probe(jar, "http://127.0.0.1:1/x", copy_dir=copies))
        await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    deadline = time.monotonic() + 5  # the removals run once the setup threads are done
    while list(copies.iterdir()) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert list(copies.iterdir()) == []


@pytest.mark.parametrize(
    ("scenario", "ok", "reason", "account"),
    [
        ("ok", True, None, True),
        ("bot", False, Reason.BOT_DETECTION, True),
        ("rotated", False, Reason.COOKIES_ROTATED, True),  # exit 0, but the session is gone
        ("age", False, Reason.AUTH_REQUIRED, False),
        ("ratelimit", False, Reason.RATE_LIMITED, True),
        ("nojs", False, Reason.JS_CHALLENGE_FAILED, False),  # yt-dlp's own "no runtime"
        ("nchallenge", False, Reason.JS_CHALLENGE_FAILED, True),
        ("silent_fail", False, Reason.OTHER, False),
        ("po_token", False, Reason.PO_TOKEN_REQUIRED, True),  # -v debug lines explain it
        ("ip_blocked", False, Reason.IP_FLAGGED, True),
        ("media_403", False, Reason.FORBIDDEN, True),
        ("skip_client", True, None, True),  # "does not support cookies" is no failure
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
    assert seen["args"].index("--no-js-runtimes") < seen["args"].index("--js-runtimes")
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


# --- the diagnosis run and the account check, through the stand-in ----------------------------


@pytest.mark.parametrize(
    ("with_cookies", "without_cookies", "diagnosis"),
    [
        ("bot", "bot", Reason.IP_FLAGGED),  # the bot wall as a guest too: the address
        ("po_token", "po_token", Reason.PO_TOKEN_REQUIRED),
        ("media_403", "ok", Reason.ACCOUNT_RESTRICTED),  # a guest gets through: the account
    ],
)
async def test_same_probe_without_cookies(
    jar: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    with_cookies: str,
    without_cookies: str,
    diagnosis: Reason,
) -> None:
    monkeypatch.setenv("FAKE_WITH_COOKIES", with_cookies)
    monkeypatch.setenv("FAKE_WITHOUT_COOKIES", without_cookies)
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    command = [*FAKE, "ok"]
    first = await run_probe(jar, YOUTUBE, command=command, js_runtime="node")
    assert "--cookies" in json.loads(record.read_text())["args"]
    second = await run_probe(jar, YOUTUBE, command=command, js_runtime="node", cookies=False)
    assert "--cookies" not in json.loads(record.read_text())["args"]
    assert first.with_cookies and not second.with_cookies and not second.account_cookies
    assert diagnose(first.reason, second.reason) is diagnosis


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        ("ll_ok", None),
        ("ll_rotated", Reason.COOKIES_ROTATED),  # the warning, then "does not exist"
        ("ll_missing", Reason.LOGGED_OUT),  # dead by timestamp: no warning, no playlist
        ("bot", Reason.BOT_DETECTION),  # not evidence about the session
    ],
)
async def test_account_check(
    jar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, reason: Reason | None
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    r = await run_account_check(
        jar, ACCOUNT_CHECK_URL, timeout=30, command=[*FAKE, scenario], js_runtime="node"
    )
    assert (r.ok, r.reason, r.check) == (reason is None, reason, "account"), r
    assert r.fixable is (reason is not None)  # logged_out and cookies_rotated ask for cookies
    args = json.loads(record.read_text())["args"]
    assert args[-2:] == ["--", ACCOUNT_CHECK_URL]
    assert args[args.index("--flat-playlist") :][:4] == ["--flat-playlist", "-I", "1", "--simulate"]
    assert "--no-playlist" not in args and "--check-formats" not in args


def test_default_account_check_url() -> None:
    assert default_account_check_url([YOUTUBE]) == ACCOUNT_CHECK_URL
    assert default_account_check_url(["http://127.0.0.1/x", "https://youtu.be/x"]) == (
        ACCOUNT_CHECK_URL
    )
    assert default_account_check_url(["http://127.0.0.1/x"]) is None
    assert default_account_check_url([]) is None
    assert default_account_check_url(["https://notyoutube.com/watch?v=x"]) is None


def test_ytdlp_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ytdlp_version(()) == yt_dlp.version.__version__  # the real one, as the probe runs it
    assert ytdlp_version([*FAKE, "ok"]) == "2026.10.26"
    monkeypatch.setenv("FAKE_VERSION", "not a version; rm -rf")
    assert ytdlp_version([*FAKE, "ok"]) is None  # it becomes a metric label
    assert ytdlp_version(["false"]) is None
    assert ytdlp_version(["/nonexistent/yt-dlp"]) is None


# --- the pipes, the copy, the jar's type ------------------------------------------------------


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("scenario", "reason"), [("escape_hang", Reason.TIMEOUT), ("escape_ok", None)]
)
async def test_escaped_grandchild_holding_the_pipes_is_not_waited_for(
    jar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario: str, reason: Reason | None
) -> None:
    """A `sleep` in a session of its own keeps stdout open for 30 s; the probe does not wait."""
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    start = time.monotonic()
    try:
        r = await run_probe(jar, "http://127.0.0.1:1/x", timeout=1.0, command=[*FAKE, scenario])
        took = time.monotonic() - start
    finally:
        escaped = json.loads(record.read_text())["escaped"]
        assert Path(f"/proc/{escaped}").exists()  # it really outlived the kill
        _kill(escaped)
    assert r.reason is reason, r
    assert took < 1.0 + 3, took
    if reason is None:  # what yt-dlp wrote before exiting was still read
        assert r.account_cookies


async def test_copies_go_to_the_runtime_directory(
    jar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    runtime = tmp_path / "run"
    runtime.mkdir()
    monkeypatch.setenv("RUNTIME_DIRECTORY", f"{runtime}:/elsewhere")

    def copy_dir() -> Path:
        seen = json.loads(record.read_text())
        return Path(seen["args"][seen["args"].index("--cookies") + 1]).parent.parent

    assert (await run_probe(jar, YOUTUBE, command=[*FAKE, "ok"], js_runtime="node")).ok
    assert copy_dir() == runtime and list(runtime.iterdir()) == []
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    await run_probe(jar, YOUTUBE, command=[*FAKE, "ok"], js_runtime="node", copy_dir=chosen)
    assert copy_dir() == chosen and list(chosen.iterdir()) == []


def test_sweep_removes_only_stale_copies(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = subprocess.Popen(["sleep", "30"])
    mine = f"{COPY_PREFIX}{os.getpid()}.{probe._INSTANCE}.live"
    names = {
        f"{COPY_PREFIX}{dead.pid}.0badf00d.x": False,  # its process is gone
        f"{COPY_PREFIX}{os.getpid()}.0badf00d.x": False,  # an earlier process with our pid
        mine: True,  # a probe of ours, running
        f"{COPY_PREFIX}{alive.pid}.0badf00d.x": True,  # another live daemon's
        "cookie-supervisor-probe-legacy": True,  # an earlier version's, recent
        "cookie-supervisor-probe-old": False,  # ... and one older than any probe
        "unrelated": True,
    }
    try:
        for name in names:
            (tmp_path / name).mkdir()
            (tmp_path / name / "cookies.txt").write_text("secret")
        old = time.time() - 2 * 86400
        os.utime(tmp_path / "cookie-supervisor-probe-old", (old, old))
        (tmp_path / f"{COPY_PREFIX}1.link").symlink_to(tmp_path / "unrelated")
        assert sweep_stale_copies(tmp_path) == 3
        for name, kept in names.items():
            assert (tmp_path / name).exists() is kept, name
        assert (tmp_path / f"{COPY_PREFIX}1.link").is_symlink()  # never followed
        assert sweep_stale_copies(tmp_path / "missing") == 0
    finally:
        alive.kill()
        alive.wait()


def test_a_probe_killed_mid_run_leaves_a_copy_the_sweep_removes(jar: Path, tmp_path: Path) -> None:
    copies = tmp_path / "copies"
    copies.mkdir()
    record = tmp_path / "record.json"
    script = (
        "import asyncio, sys; from pathlib import Path; "
        "from cookie_supervisor.probe import run_probe; "
        f"asyncio.run(run_probe(Path({str(jar)!r}), 'http://127.0.0.1:1/x', timeout=60, "
        f"command={[*FAKE, 'hang']!r}, copy_dir=Path({str(copies)!r})))"
    )
    env = {**os.environ, "FAKE_RECORD": str(record)}
    daemon = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        wait_for(lambda: json.loads(record.read_text())["pid"], timeout=20, what="the probe")
    finally:
        daemon.kill()  # SIGKILL: no finally of the probe runs
        daemon.wait()
        if record.exists():  # the orphaned yt-dlp stand-in, in its own process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(json.loads(record.read_text())["pid"], signal.SIGKILL)
    left = [p for p in copies.iterdir() if p.name.startswith(COPY_PREFIX)]
    assert len(left) == 1 and (left[0] / "cookies.txt").exists()
    assert sweep_stale_copies(copies) == 1 and list(copies.iterdir()) == []


@contextlib.contextmanager
def _unix_socket(path: Path) -> Iterator[None]:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))
        yield


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket"])
async def test_a_jar_that_is_not_a_file_fails_fast_off_the_loop(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cookies.txt"
    with contextlib.ExitStack() as stack:
        if kind == "fifo":
            os.mkfifo(path)  # no writer: a blocking open would wait forever
        elif kind == "directory":
            path.mkdir()
        else:
            stack.enter_context(_unix_socket(path))
        gaps: list[float] = []

        async def heartbeat() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                gaps.append(time.monotonic() - last)
                last = time.monotonic()

        beat = asyncio.create_task(heartbeat())
        start = time.monotonic()
        r = await asyncio.wait_for(
            run_probe(path, "http://127.0.0.1:1/x", command=["/nonexistent"]), 5
        )
        took = time.monotonic() - start
        beat.cancel()
    assert r.reason is Reason.NOT_A_FILE and not r.fixable and r.exit_code is None, r
    assert {"fifo": "FIFO", "directory": "directory", "socket": "socket"}[kind] in r.message
    assert took < 2 and max(gaps, default=0) < 0.5, (took, gaps)


@pytest.mark.parametrize(
    ("err", "reason"),
    [
        (errno.EACCES, Reason.UNREADABLE),  # permissions, not cookies
        (errno.EMFILE, Reason.OTHER),  # the daemon's own trouble: never missing_cookies
        (errno.EIO, Reason.OTHER),
        (errno.ENOTDIR, Reason.MISSING_COOKIES),
    ],
)
async def test_copy_errors_are_named_not_guessed(
    jar: Path, monkeypatch: pytest.MonkeyPatch, err: int, reason: Reason
) -> None:
    # root reads any file, so no chmod produces EACCES here: the error is injected at the open
    real_open = os.open

    def fake_open(path: str | Path, flags: int, mode: int = 0o777) -> int:
        if Path(path) == jar:
            raise OSError(err, os.strerror(err))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", fake_open)
    r = await run_probe(jar, "http://127.0.0.1:1/x", command=["/nonexistent"])
    assert r.reason is reason and r.exit_code is None, r
    if reason is Reason.OTHER:
        assert errno.errorcode[err] in r.message


async def test_a_missing_command_is_a_result_not_an_exception(jar: Path) -> None:
    r = await run_probe(jar, "http://127.0.0.1:1/x", command=["/nonexistent/yt-dlp"])
    assert r.reason is Reason.OTHER and "ENOENT" in r.message and not r.fixable
