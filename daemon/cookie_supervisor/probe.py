"""One validation run: yt-dlp, in a child process, on a private copy of a cookie jar.

yt-dlp truncates and rewrites its `--cookies` file at the end of every run, simulated or not, so
the probe never hands it the production file: it copies the jar to a 0600 file in a private
directory and throws the copy away afterwards. The child runs in its own session with a hard
timeout; on expiry (or cancellation) the whole process group is killed and reaped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cookie_supervisor.classify import Reason, classify, redact
from cookie_supervisor.cookiefile import MAX_BYTES

ProbeMode = Literal["download", "metadata"]
OUTPUT_LIMIT = 64 * 1024  # per stream; yt-dlp -v prints a few KiB
MESSAGE_LIMIT = 500
# `worst audio, else worst`: the cheapest format that still makes yt-dlp fetch media
# (--check-formats does one 10,241-byte ranged GET of it), which is where media 403s show.
FORMAT = "wa/w"
ACCOUNT_COOKIES = "found youtube account cookies"
JS_RUNTIMES = ("deno", "node", "bun")


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    reason: Reason | None
    url: str
    duration: float
    account_cookies: bool
    message: str
    exit_code: int | None

    @property
    def fixable(self) -> bool:
        return self.reason is not None and self.reason.fixable


def detect_js_runtime(setting: str) -> str | None:
    """`auto`: deno, else node, else bun from PATH; `none`: no runtime; else that name if found."""
    if setting == "none":
        return None
    if setting == "auto":
        return next((name for name in JS_RUNTIMES if shutil.which(name)), None)
    name, _, path = setting.partition(":")
    return setting if shutil.which(path or name) else None


def needs_js(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "youtu.be" or host == "youtube.com" or host.endswith(".youtube.com")


def ytdlp_args(
    cookies: Path, url: str, mode: ProbeMode, js_runtime: str | None, cache_dir: Path | None
) -> list[str]:
    """yt-dlp's own socket timeout (20 s) stays: ending a hung server is the hard timeout's job."""
    args = [
        "--no-config",
        "--no-playlist",
        "--no-progress",
        "--no-color",
        # -v prints "Found YouTube account cookies"; never --no-warnings: rotation is a warning
        "-v",
        "--cookies",
        str(cookies),
    ]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    if js_runtime:
        args += ["--js-runtimes", js_runtime]
    if mode == "download":
        args += ["--simulate", "--check-formats", "-f", FORMAT]
    else:
        args += ["--simulate"]
    return [*args, "--", url]


async def run_probe(
    cookies_file: Path,
    url: str,
    *,
    mode: ProbeMode = "download",
    timeout: float = 120.0,
    command: Sequence[str] = (),
    js_runtime: str | None = None,
    workdir: Path | None = None,
) -> ProbeResult:
    started = time.monotonic()

    def failed(reason: Reason, message: str, code: int | None = None) -> ProbeResult:
        return ProbeResult(False, reason, url, time.monotonic() - started, False, message, code)

    if needs_js(url) and js_runtime is None:
        return failed(Reason.NO_JS_RUNTIME, "no JavaScript runtime (deno, node) for yt-dlp")
    with tempfile.TemporaryDirectory(prefix="cookie-supervisor-probe-") as private:
        copy = Path(private) / "cookies.txt"
        if not _copy_jar(cookies_file, copy):
            return failed(Reason.MISSING_COOKIES, "cookie file missing or unreadable")
        cache = workdir or _cache_dir()
        argv = [
            *(command or (sys.executable, "-m", "yt_dlp")),
            *ytdlp_args(copy, url, mode, js_runtime, cache),
        ]
        run = await _run(argv, timeout, cwd=private)
    if run is None:
        return failed(Reason.TIMEOUT, f"validation did not finish within {timeout:g}s; killed")
    code, stdout, stderr = run
    reason, message, account = judge(code, stdout, stderr)
    return ProbeResult(
        reason is None, reason, url, time.monotonic() - started, account, message, code
    )


def _copy_jar(source: Path, target: Path) -> bool:
    """Bounded copy into a 0600 file that did not exist before."""
    try:
        with source.open("rb") as src:
            data = src.read(MAX_BYTES + 1)
    except OSError:
        return False
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as dst:
        dst.write(data[:MAX_BYTES])
    return True


def _cache_dir() -> Path | None:
    """systemd's CacheDirectory= if there is one; else yt-dlp's own default."""
    base = os.environ.get("CACHE_DIRECTORY")
    return Path(base.split(":")[0]) / "yt-dlp" if base else None


async def _run(argv: list[str], timeout: float, cwd: str) -> tuple[int, str, str] | None:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:
        out, err, code = await asyncio.wait_for(
            asyncio.gather(_tail(proc.stdout), _tail(proc.stderr), proc.wait()), timeout
        )
    except (TimeoutError, asyncio.CancelledError) as exc:
        _kill_group(proc.pid)
        await proc.wait()  # reap: no zombie
        if isinstance(exc, asyncio.CancelledError):
            raise
        return None
    _kill_group(proc.pid)  # anything yt-dlp left behind in its group (a JS runtime, ffmpeg)
    return code, out, err


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _tail(stream: asyncio.StreamReader) -> str:
    """The last OUTPUT_LIMIT bytes of a stream, read to its end."""
    chunks: deque[bytes] = deque()
    size = 0
    while chunk := await stream.read(16384):
        chunks.append(chunk)
        size += len(chunk)
        while size - len(chunks[0]) >= OUTPUT_LIMIT:
            size -= len(chunks.popleft())
    return b"".join(chunks)[-OUTPUT_LIMIT:].decode("utf-8", "replace")


def judge(code: int, stdout: str, stderr: str) -> tuple[Reason | None, str, bool]:
    """(failure reason or None, message, yt-dlp saw account cookies) from one run's output."""
    lines = (stderr + "\n" + stdout).splitlines()
    account = any(ACCOUNT_COOKIES in line.lower() for line in lines)
    # Only yt-dlp's verdicts: -v debug lines carry paths and words like "cookies" that would
    # make the weak patterns misfire.
    verdicts = [ln.strip() for ln in lines if ln.lstrip().startswith(("ERROR:", "WARNING:"))]
    rotated = [ln for ln in verdicts if classify(ln).reason is Reason.COOKIES_ROTATED]
    if code == 0 and not rotated:
        return None, "", account
    errors = [ln for ln in verdicts if ln.startswith("ERROR:")]
    decisive = rotated or errors or verdicts
    reason = classify("\n".join(decisive)).reason if decisive else Reason.OTHER
    if reason is Reason.OTHER and verdicts:
        # An ERROR yt-dlp can't explain is often explained by its WARNINGs before it:
        # "Unable to download format ... Skipping", "No supported JavaScript runtime".
        decisive = verdicts
        reason = classify("\n".join(decisive)).reason
    text = "\n".join(decisive)
    return reason, redact(text or f"yt-dlp exited with {code}", MESSAGE_LIMIT), account
