"""One validation run: yt-dlp, in a child process, on a private copy of a cookie jar.

yt-dlp truncates and rewrites its `--cookies` file at the end of every run, simulated or not, so
the probe never hands it the production file: it copies the jar to a 0600 file in a private
directory and throws the copy away afterwards. The child runs in its own session with a hard
timeout; on expiry (or cancellation) the whole process group is killed and reaped.

Three kinds of run (docs/ytdlp.md, "How the probe runs yt-dlp"): the media probe (with cookies, or
without them to tell the cookies from the address), and the account check, one metadata request
only a session YouTube still honours can answer. No file I/O happens on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from cookie_supervisor import safefile
from cookie_supervisor.children import die_with_parent
from cookie_supervisor.classify import Reason, classify, normalize, redact
from cookie_supervisor.cookiefile import MAX_BYTES

ProbeMode = Literal["download", "metadata", "account"]
Problem = tuple[Reason, str]  # a reason and a message, found before any child ran
OUTPUT_LIMIT = 64 * 1024  # per stream; yt-dlp -v prints a few KiB
MESSAGE_LIMIT = 500
# `worst audio, else worst`: the cheapest format that still makes yt-dlp fetch media
# (--check-formats does one 10,241-byte ranged GET of it), which is where media 403s show.
FORMAT = "wa/w"
ACCOUNT_COOKIES = "found youtube account cookies"
JS_RUNTIMES = ("deno", "node", "bun")
# The account's liked videos: private, so only an honoured login session gets an entry back.
ACCOUNT_CHECK_URL = "https://www.youtube.com/playlist?list=LL"
# YouTube's answer for a private playlist to a session it does not take for the owner's
NO_PLAYLIST = "youtube said: the playlist does not exist"
# After the child's group is dead, what it wrote is already in the pipes: read it for this long
# at most. Longer means a grandchild escaped the group and holds them; it is not waited for.
DRAIN = 1.0
VERSION_TIMEOUT = 30.0
# Private copies are named PREFIX<pid>.<instance>.<random>: a sweep can tell a live daemon's copy
# from one left by a killed process (even one whose pid this process now has).
COPY_PREFIX = "cookie-supervisor-probe."
STALE_AGE = 86400.0  # older than any probe: stale whoever made it
_INSTANCE = secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    reason: Reason | None
    url: str
    duration: float
    account_cookies: bool
    message: str
    exit_code: int | None
    with_cookies: bool = True  # False: the diagnosis run, same probe without --cookies
    check: Literal["media", "account"] = "media"
    # The daemon's own OS trouble (ENOSPC, EFBIG, EMFILE, EIO) kept the probe from running: its
    # errno name. No verdict about the cookies, whatever `reason` says.
    os_error: str | None = None

    @property
    def fixable(self) -> bool:
        return self.reason is not None and self.reason.fixable


def detect_js_runtime(setting: str) -> str | None:
    """The `--js-runtimes` value for the probe (`NAME` or `NAME:PATH`), or None.

    `auto`: deno from PATH, else the deno the `deno` package installed next to this Python, else
    node, else bun from PATH; `none`: no runtime; else that name (or `NAME:PATH`) if found, a bare
    `deno` falling back to the shipped one. deno comes first because it is the runtime yt-dlp
    enables by default and supports best (it calls Node.js 20 "unsupported").
    """
    if setting == "none":
        return None
    if setting == "auto":
        if shutil.which("deno"):
            return "deno"
        if shipped := shipped_deno():
            return f"deno:{shipped}"
        return next((name for name in JS_RUNTIMES if shutil.which(name)), None)
    name, _, path = setting.partition(":")
    if shutil.which(path or name):
        return setting
    if setting == "deno" and (shipped := shipped_deno()):
        return f"deno:{shipped}"
    return None


def shipped_deno() -> str | None:
    """The deno binary of the `deno` PyPI package in this environment, if it is installed."""
    try:
        from deno import find_deno_bin  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None
    try:
        found = str(find_deno_bin())
    except (OSError, FileNotFoundError):
        return None
    return found if os.access(found, os.X_OK) else None


def runtime_name(js_runtime: str | None) -> str:
    """The runtime's name for a metric label: `deno` of `deno:/opt/…/deno`; `none` for None."""
    return js_runtime.partition(":")[0] if js_runtime else "none"


def is_youtube(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host == "youtu.be" or host == "youtube.com" or host.endswith(".youtube.com")


def default_account_check_url(validation_urls: Sequence[str]) -> str | None:
    """The account check a source gets when it sets none: LL when it validates against YouTube."""
    return ACCOUNT_CHECK_URL if any(is_youtube(url) for url in validation_urls) else None


def ytdlp_args(
    cookies: Path | None,
    url: str,
    mode: ProbeMode,
    js_runtime: str | None,
    cache_dir: Path | None,
    extra: Sequence[str] = (),
) -> list[str]:
    """yt-dlp's own socket timeout (20 s) stays: ending a hung server is the hard timeout's job.

    `extra` is the source's `ytdlp_args` (allow-listed by probe_args when the settings load): after
    the probe's own options, before the `--` that ends them.
    """
    # -v prints "Found YouTube account cookies" and the PO-token notices of the default
    # clients; never --no-warnings: rotation is a warning
    args = ["--no-config", "--no-progress", "--no-color", "-v"]
    if cookies is not None:
        args += ["--cookies", str(cookies)]
    if cache_dir is not None:
        args += ["--cache-dir", str(cache_dir)]
    if js_runtime:
        # Exactly this runtime: without --no-js-runtimes yt-dlp would also enable deno from PATH,
        # and the runtime in build_info would not be the one that ran.
        args += ["--no-js-runtimes", "--js-runtimes", js_runtime]
    if mode == "download":
        args += ["--no-playlist", "--simulate", "--check-formats", "-f", FORMAT]
    elif mode == "metadata":
        args += ["--no-playlist", "--simulate"]
    else:  # one flat entry of a playlist: a single metadata request, no video extraction
        args += ["--flat-playlist", "-I", "1", "--simulate"]
    return [*args, *extra, "--", url]


def ytdlp_command(command: Sequence[str]) -> list[str]:
    return list(command) or [sys.executable, "-m", "yt_dlp"]


def ytdlp_version(command: Sequence[str]) -> str | None:
    """`yt-dlp --version` of the command the probe runs (it reads no cookies); None if it fails.

    Blocking, once at start: call it off the event loop.
    """
    try:
        out = _run_quick([*ytdlp_command(command), "--version"])
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().partition("\n")[0].strip()
    # it becomes a metric label: a version-shaped word or nothing
    if out.returncode != 0 or not re.fullmatch(r"[\w.+-]{1,64}", first):
        return None
    return first


@dataclass(frozen=True, slots=True)
class Components:
    """What yt-dlp's own `-v` header says it will solve YouTube's JS challenges with."""

    solver: str | None  # the yt-dlp-ejs package's version; None: not installed
    runtime: str | None  # e.g. "2.9.8", "20.20.2 (unsupported)"; None: no usable runtime


_EJS = re.compile(r"^\[debug\] Optional libraries: .*?\byt_dlp_ejs-([\w.+-]{1,32})", re.M)
_RUNTIMES = re.compile(r"^\[debug\] JS runtimes: ([^\n]{1,200})$", re.M)
_RUNTIME = re.compile(r"^[a-z]+-([\w.+-]{1,32})( \(unsupported\))?")


def ytdlp_components(command: Sequence[str], js_runtime: str | None) -> Components:
    """The solver and JS runtime the probe's yt-dlp finds, from its `-v` header.

    One run with the probe's runtime arguments and no URL: yt-dlp prints its header and stops at
    the missing URL (exit 2), reading no cookies and fetching nothing. Blocking, once at start.
    """
    runtime = ["--no-js-runtimes", *(["--js-runtimes", js_runtime] if js_runtime else [])]
    try:
        out = _run_quick([*ytdlp_command(command), "--no-config", "-v", *runtime])
    except (OSError, subprocess.SubprocessError):
        return Components(None, None)
    text = out.stderr[-OUTPUT_LIMIT:]
    solver = m.group(1) if (m := _EJS.search(text)) else None
    line = _RUNTIMES.search(text)
    m = _RUNTIME.match(line.group(1)) if line is not None else None
    return Components(solver, m.group(1) + (m.group(2) or "") if m is not None else None)


def _run_quick(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`subprocess.run` for the short start-up runs, except that at the timeout the child's whole
    process group is killed (a JS runtime it started too), not the child alone; and the child
    dies with the daemon. Raises OSError or subprocess.TimeoutExpired."""
    with subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
        preexec_fn=die_with_parent(),
    ) as proc:
        _QUICK.add(proc.pid)
        try:
            stdout, stderr = proc.communicate(timeout=VERSION_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
            raise
        finally:
            _QUICK.discard(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, stdout, stderr)


_QUICK: set[int] = set()  # process groups of the start-up runs still going


def stop_quick_runs() -> None:
    """At shutdown: end the start-up runs still going, with everything they started."""
    for pgid in list(_QUICK):
        _kill_group(pgid)


def default_copy_dir() -> Path:
    """systemd's RuntimeDirectory= (emptied when the unit stops) if there is one; else $TMPDIR."""
    runtime = os.environ.get("RUNTIME_DIRECTORY")
    return Path(runtime.split(":")[0]) if runtime else Path(tempfile.gettempdir())


async def run_probe(
    cookies_file: Path,
    url: str,
    *,
    mode: ProbeMode = "download",
    timeout: float = 120.0,
    command: Sequence[str] = (),
    js_runtime: str | None = None,
    workdir: Path | None = None,
    cookies: bool = True,
    copy_dir: Path | None = None,
    extra: Sequence[str] = (),
) -> ProbeResult:
    """One yt-dlp run on `url`; `cookies=False` runs it without `--cookies` (the diagnosis);
    `extra`: the source's own yt-dlp options."""
    started = time.monotonic()
    check: Literal["media", "account"] = "account" if mode == "account" else "media"

    def result(
        reason: Reason | None, message: str, account: bool = False, code: int | None = None
    ) -> ProbeResult:
        duration = time.monotonic() - started
        return ProbeResult(
            reason is None, reason, url, duration, account, message, code, cookies, check
        )

    if is_youtube(url) and js_runtime is None:
        return result(Reason.NO_JS_RUNTIME, "no JavaScript runtime (deno, node) for yt-dlp")
    # The private directory and the copy in one thread call, shielded: a cancellation cannot
    # leave a copy behind that nobody removes (it is removed when the thread is done).
    jar_source = cookies_file if cookies else None
    setup = asyncio.ensure_future(
        asyncio.to_thread(_prepare, copy_dir or default_copy_dir(), jar_source)
    )
    try:
        private, jar, problem = await asyncio.shield(setup)
    except asyncio.CancelledError:
        setup.add_done_callback(_remove_later)
        raise
    except OSError as exc:  # the private directory or the jar's copy (disk full, EFBIG, EMFILE)
        return replace(
            result(Reason.OTHER, f"could not prepare the probe: {_errno(exc)} (a daemon problem)"),
            os_error=_errno(exc),
        )
    try:
        if problem is not None:
            return result(*problem)
        cache = workdir or _cache_dir()
        argv = [*ytdlp_command(command), *ytdlp_args(jar, url, mode, js_runtime, cache, extra)]
        try:
            run = await _run(argv, timeout, cwd=private)
        except OSError as exc:  # the command is not there, or not executable; or no resources
            trouble = exc.errno not in _NOT_TROUBLE
            outcome = result(Reason.OTHER, f"could not start yt-dlp: {_errno(exc)}")
            return replace(outcome, os_error=_errno(exc)) if trouble else outcome
    finally:
        # in a thread even when cancelled: the removal finishes whether or not we wait for it
        await asyncio.to_thread(_remove_private, private)
    if run is None:
        return result(Reason.TIMEOUT, f"validation did not finish within {timeout:g}s; killed")
    code, stdout, stderr = run
    reason, message, account = judge(code, stdout, stderr, account_check=check == "account")
    return result(reason, message, account, code)


async def run_account_check(
    cookies_file: Path,
    url: str = ACCOUNT_CHECK_URL,
    *,
    timeout: float = 120.0,
    command: Sequence[str] = (),
    js_runtime: str | None = None,
    workdir: Path | None = None,
    copy_dir: Path | None = None,
    extra: Sequence[str] = (),
) -> ProbeResult:
    """The first entry of a private playlist, flat: fails as logged_out/cookies_rotated when
    YouTube no longer honours the session, whatever the local cookies look like."""
    return await run_probe(
        cookies_file,
        url,
        mode="account",
        timeout=timeout,
        command=command,
        js_runtime=js_runtime,
        workdir=workdir,
        copy_dir=copy_dir,
        extra=extra,
    )


# --- the private copy -----------------------------------------------------------------------------


def _prepare(
    base: Path, source: Path | None
) -> tuple[Path, Path | None, tuple[Reason, str] | None]:
    """(private 0700 directory, the jar's copy in it or None, the problem copying if any)."""
    private = Path(tempfile.mkdtemp(prefix=f"{COPY_PREFIX}{os.getpid()}.{_INSTANCE}.", dir=base))
    if source is None:
        return private, None, None
    jar = private / "cookies.txt"
    try:
        return private, jar, _copy_jar(source, jar)
    except BaseException:
        _remove_private(private)
        raise


def _remove_later(setup: asyncio.Future[tuple[Path, Path | None, Problem | None]]) -> None:
    if not setup.cancelled() and setup.exception() is None:
        private = setup.result()[0]
        asyncio.get_running_loop().run_in_executor(None, _remove_private, private)


def _remove_private(private: Path) -> None:
    """Remove the private directory and the jar's copy in it, even out of descriptors.

    rmtree walks with descriptors; at EMFILE it fails silently and would leave the copy of the
    cookies behind. The copy's own name and the directory go without one (unlink, rmdir).
    """
    shutil.rmtree(private, ignore_errors=True)
    if os.path.lexists(private):
        with contextlib.suppress(OSError):
            os.unlink(private / "cookies.txt")
        with contextlib.suppress(OSError):
            os.rmdir(private)


_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "device"),
)


def _copy_jar(source: Path, target: Path) -> Problem | None:
    """Bounded copy into a 0600 file that did not exist before; the problem if there is one.

    The jar is opened the safe way (safefile: non-blocking, the type checked on the opened
    descriptor); a symlinked jar is followed, as yt-dlp would.
    """
    try:
        with safefile.open_regular(source, follow=True) as (fd, _):
            data = safefile.read_at_most(fd, MAX_BYTES)  # an OSError: the daemon's (run_probe)
    except (FileNotFoundError, NotADirectoryError):
        return Reason.MISSING_COOKIES, "cookie file missing"
    except PermissionError:
        return Reason.UNREADABLE, "cookie file not readable by the daemon (permissions)"
    except safefile.NotRegular as exc:
        mode = exc.stat.st_mode
        kind = next((name for test, name in _KINDS if test(mode)), "special file")
        return Reason.NOT_A_FILE, f"the cookie file's path holds a {kind}, not a regular file"
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a socket (or a device with nothing behind it)
            return Reason.NOT_A_FILE, "the cookie file's path holds a socket, not a regular file"
        raise  # EMFILE, EIO, ...: the daemon's trouble, no verdict (run_probe)
    out = os.open(
        target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
    )
    with os.fdopen(out, "wb") as dst:
        dst.write(data)
    return None


# Why a command cannot start that is a setting's fault, not the machine's: a validation verdict
# (every validation fails until the command is fixed), where EMFILE, ENOMEM, EAGAIN are none.
_NOT_TROUBLE = frozenset({errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOEXEC, errno.ENOTDIR})


def _errno(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def sweep_stale_copies(directory: Path | None = None) -> int:
    """Remove private copies that killed probes left behind (SIGKILL, OOM); how many went.

    A copy is stale when the process that made it is gone (or is an earlier process with this
    process's pid), or when it is older than any probe runs. Other live daemons' copies stay.
    Blocking: call it at start, off the event loop.
    """
    base = directory or default_copy_dir()
    removed = 0
    try:
        entries = list(os.scandir(base))
    except OSError:
        return 0
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(COPY_PREFIX.rstrip(".")):  # "-" too: earlier versions
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            continue
        if now - st.st_mtime > STALE_AGE or _orphaned(entry.name):
            _kill_lingering(entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += not os.path.lexists(entry.path)
    return removed


def _kill_lingering(directory: str) -> None:
    """SIGKILL what still runs in a dead daemon's private directory: its probe's children (a JS
    runtime), which outlived yt-dlp. The working directory names them without doubt, whatever
    pids were reused since."""
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return
    for pid in pids:
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue  # gone, or not ours to look at
        if cwd == directory or cwd.startswith(directory + os.sep):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)


def _orphaned(name: str) -> bool:
    pid_text, _, rest = name.removeprefix(COPY_PREFIX).partition(".")
    if not name.startswith(COPY_PREFIX) or not pid_text.isdigit():
        return False  # an earlier version's name: the age rule only
    pid = int(pid_text)
    if pid == os.getpid():
        return rest.partition(".")[0] != _INSTANCE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def _cache_dir() -> Path | None:
    """systemd's CacheDirectory= if there is one; else yt-dlp's own default."""
    base = os.environ.get("CACHE_DIRECTORY")
    return Path(base.split(":")[0]) / "yt-dlp" if base else None


# --- the child --------------------------------------------------------------------------------


class _Tail(asyncio.Protocol):
    """The last OUTPUT_LIMIT bytes written to a pipe; `closed` resolves at its end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.closed: asyncio.Future[None] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        while self.size - len(self.chunks[0]) >= OUTPUT_LIMIT:
            self.size -= len(self.chunks.popleft())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def text(self) -> str:
        return b"".join(self.chunks)[-OUTPUT_LIMIT:].decode("utf-8", "replace")


async def _run(argv: list[str], timeout: float, cwd: Path) -> tuple[int, str, str] | None:
    """(exit code, stdout, stderr), or None when killed at the timeout.

    The pipes are ours, not asyncio's: asyncio's `Process.wait()` also waits for its pipes to
    close, which a grandchild that left the process group can hold open for as long as it likes.
    """
    loop = asyncio.get_running_loop()
    tails = (_Tail(loop), _Tail(loop))
    transports: list[asyncio.ReadTransport] = []
    write_ends: list[int] = []
    try:
        for tail in tails:
            write_end, transport = await _pipe_to(loop, tail)
            write_ends.append(write_end)
            transports.append(transport)
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_ends[0],
            stderr=write_ends[1],
            start_new_session=True,
            preexec_fn=die_with_parent(),  # a SIGKILLed daemon leaves no yt-dlp running
        )
        for fd in write_ends:
            os.close(fd)
        write_ends.clear()
        code: int | None = None
        try:
            code = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            pass
        finally:  # also on cancellation
            # yt-dlp on timeout, and whatever it left in its group (a JS runtime, ffmpeg)
            _kill_group(proc.pid)
            await proc.wait()  # reap: no zombie; returns at exit, the pipes being ours
        await asyncio.wait([tail.closed for tail in tails], timeout=DRAIN)
    finally:
        for fd in write_ends:
            os.close(fd)
        for reader in transports:
            reader.close()
    if code is None:
        return None
    return code, tails[0].text(), tails[1].text()


async def _pipe_to(
    loop: asyncio.AbstractEventLoop, tail: _Tail
) -> tuple[int, asyncio.ReadTransport]:
    """A pipe whose read end feeds `tail`; the write end is the caller's to hand on and close."""
    read_end, write_end = os.pipe()
    pipe = os.fdopen(read_end, "rb", buffering=0)
    try:
        transport, _ = await loop.connect_read_pipe(lambda: tail, pipe)
    except BaseException:
        pipe.close()
        os.close(write_end)
        raise
    return write_end, transport


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


# --- the verdict ------------------------------------------------------------------------------


def judge(
    code: int, stdout: str, stderr: str, *, account_check: bool = False
) -> tuple[Reason | None, str, bool]:
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
    if reason is Reason.OTHER:
        # For its default clients yt-dlp says "formats require a GVS PO Token" in -v debug
        # lines only; when nothing else explains the failure, that is the explanation.
        notices = [ln.strip() for ln in lines if "po token" in ln.lower()]
        if notices and classify("\n".join(notices)).reason is Reason.PO_TOKEN_REQUIRED:
            decisive, reason = [*notices[:1], *decisive], Reason.PO_TOKEN_REQUIRED
    text = "\n".join(decisive)
    if account_check and (reason is Reason.AUTH_REQUIRED or NO_PLAYLIST in normalize(text)):
        # The account's own private playlist "does not exist", or wants a login: YouTube no
        # longer takes the session for that account's. (A 404 stays a 404: a wrong URL.)
        reason = Reason.LOGGED_OUT
    return reason, redact(text or f"yt-dlp exited with {code}", MESSAGE_LIMIT), account
