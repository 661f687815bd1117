"""The cookie-file parser, quirk by quirk, and against yt-dlp's own loader."""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cookie_supervisor import cookiefile
from cookie_supervisor.classify import Reason
from cookie_supervisor.cookiefile import LINE_MAX, LOGIN_NAMES, MAX_BYTES, MAX_TIMESTAMP
from cookie_supervisor.model import CookieReport
from tests.support import ROOT, SECRET_MARK, cookie_jar, wait_for

T = TypeVar("T")

HEADER = "# Netscape HTTP Cookie File\n"
FUTURE = int(time.time()) + 30 * 86400


def inspect(path: Path | str, *, key: bytes | None = None) -> CookieReport:
    """cookiefile.inspect on the test's wall clock (it has none of its own)."""
    return cookiefile.inspect(path, time.time(), key=key)


def row(
    name: str,
    value: str = "v",
    *,
    domain: str = ".youtube.com",
    expires: object = FUTURE,
    path: str = "/",
    prefix: str = "",
) -> str:
    flag = "TRUE" if domain.startswith(".") else "FALSE"
    return f"{prefix}{domain}\t{flag}\t{path}\tTRUE\t{expires}\t{name}\t{value}\n"


def write(tmp_path: Path, text: str | bytes, name: str = "cookies.txt") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def test_logged_in_jar(tmp_path: Path) -> None:
    r = inspect(write(tmp_path, cookie_jar()))
    assert r.valid and r.logged_in and r.problem() is None
    assert r.cookies == 6 and r.malformed_lines == 0
    assert r.login_cookies == (
        "LOGIN_INFO",
        "SAPISID",
        "SID",
        "__Secure-3PAPISID",
        "__Secure-3PSID",
    )
    assert r.login_expires_at is not None and r.login_expires_at > time.time()
    assert r.fingerprint


def test_httponly_prefix_is_a_cookie_not_a_comment(tmp_path: Path) -> None:
    text = HEADER + row("LOGIN_INFO", prefix="#HttpOnly_") + row("SAPISID")
    r = inspect(write(tmp_path, text))
    assert r.cookies == 2 and r.logged_in


def test_comments_blank_lines_and_crlf(tmp_path: Path) -> None:
    text = HEADER + "# a comment\n\n   \n$ dollar comment\n" + row("LOGIN_INFO") + row("SAPISID")
    r = inspect(write(tmp_path, text.replace("\n", "\r\n")))
    # yt-dlp's own pass warns about the `$` line ("skipping cookie file entry"), then the
    # stdlib's would have skipped it anyway: malformed, but no cookie lost.
    assert r.valid and r.cookies == 2 and r.logged_in and r.malformed_lines == 1


def test_session_cookies_count_as_alive_and_have_no_expiry(tmp_path: Path) -> None:
    r = inspect(write(tmp_path, HEADER + row("LOGIN_INFO", expires=0) + row("SAPISID", expires="")))
    assert r.logged_in and r.login_expires_at is None


def test_malformed_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    text = (
        HEADER
        + row("LOGIN_INFO")
        + row("SAPISID")
        + "a b c d e f g\n"
        + row("X", expires="Session")
        + "only\ttwo\n"
    )
    r = inspect(write(tmp_path, text))
    assert r.valid and r.cookies == 2 and r.malformed_lines == 3 and r.logged_in


def test_float_expiry_is_accepted(tmp_path: Path) -> None:
    r = inspect(write(tmp_path, HEADER + row("LOGIN_INFO", expires=f"{FUTURE}.5") + row("SAPISID")))
    assert r.cookies == 2 and r.login_expires_at == FUTURE


@pytest.mark.parametrize(
    ("cookies", "logged_in", "problem"),
    [
        ([row("SAPISID")], False, Reason.LOGGED_OUT),
        ([row("LOGIN_INFO")], False, Reason.LOGGED_OUT),
        ([row("SID"), row("HSID"), row("__Secure-3PSID")], False, Reason.LOGGED_OUT),
        ([row("LOGIN_INFO"), row("__Secure-1PAPISID")], True, None),
        ([row("LOGIN_INFO"), row("__Secure-3PAPISID")], True, None),
        ([row("LOGIN_INFO", expires=1000), row("SAPISID", expires=1000)], False, Reason.EXPIRED),
        ([row("LOGIN_INFO"), row("SAPISID", expires=1000)], False, Reason.EXPIRED),
        (
            [row("LOGIN_INFO", domain=".google.com"), row("SAPISID", domain=".google.com")],
            False,
            Reason.LOGGED_OUT,
        ),
        (
            [row("LOGIN_INFO", domain="www.youtube.com"), row("SAPISID", domain="youtube.com")],
            True,
            None,
        ),
        ([row("LOGIN_INFO", domain="m.youtube.com"), row("SAPISID")], False, Reason.LOGGED_OUT),
        ([row("LOGIN_INFO", path="/feed"), row("SAPISID")], False, Reason.LOGGED_OUT),
        ([row("LOGIN_INFO", value=""), row("SAPISID")], False, Reason.LOGGED_OUT),
    ],
)
def test_logged_in_follows_ytdlp_rule(
    tmp_path: Path, cookies: list[str], logged_in: bool, problem: Reason | None
) -> None:
    r = inspect(write(tmp_path, HEADER + "".join(cookies)))
    assert r.logged_in is logged_in
    assert r.problem() == problem


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"", "empty file"),
        (b"\xef\xbb\xbf# Netscape HTTP Cookie File\n", "missing header"),
        (b'[{"domain": ".youtube.com"}]', "JSON"),
        (b".youtube.com\tTRUE\t/\tTRUE\t0\tSID\tx\n", "missing header"),
        (HEADER.encode() + b"\0\0\0binary", "binary"),
        (HEADER.encode() + b"\xff\xfe bad utf8", "UTF-8"),
        (HEADER.encode() + b".youtube.com\tFALSE\t/\tTRUE\t0\tSID\tx\n", "include-subdomains"),
    ],
)
def test_unusable_files_are_reported_with_a_reason(
    tmp_path: Path, content: bytes, error: str
) -> None:
    r = inspect(write(tmp_path, content))
    assert r.exists and not r.valid and error in (r.error or "")
    assert r.problem() is Reason.CORRUPT_COOKIES


def test_plain_http_cookie_file_header_is_accepted(tmp_path: Path) -> None:
    assert inspect(write(tmp_path, "# HTTP Cookie File\n" + row("SID"))).valid


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = inspect(tmp_path / "nope.txt")
    assert not missing.exists and missing.problem() is Reason.MISSING_COOKIES
    under_a_file = inspect(write(tmp_path, cookie_jar()) / "cookies.txt")  # ENOTDIR
    assert not under_a_file.exists and under_a_file.problem() is Reason.MISSING_COOKIES
    d = inspect(tmp_path)
    assert d.exists and d.error == "is a directory" and d.file_type == "directory"
    assert d.problem() is Reason.NOT_A_FILE and d.conclusive


def test_huge_file_is_not_read(tmp_path: Path) -> None:
    p = tmp_path / "huge.txt"
    with p.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: costs no disk, and would cost memory if read
    r = inspect(p)
    assert r.error is not None and "too large" in r.error and r.size == MAX_BYTES + 1


def test_file_larger_than_its_stat_stops_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A /proc file stats as 0 bytes and reads as more: like a jar growing while it is read.
    monkeypatch.setattr(cookiefile, "MAX_BYTES", 100)
    link = tmp_path / "cookies.txt"
    link.symlink_to("/proc/self/maps")
    r = inspect(link)
    assert r.size == 0 and r.error == "too large (over 100 bytes)"


def test_permissions(tmp_path: Path) -> None:
    p = write(tmp_path, cookie_jar())
    os.chmod(p, 0o600)
    assert inspect(p).secure_permissions is True
    os.chmod(p, 0o640)
    r = inspect(p)
    assert r.secure_permissions is False and r.mode == 0o640


def test_fingerprint_tracks_session_values_not_rotating_ones(tmp_path: Path) -> None:
    base = cookie_jar()
    a = inspect(write(tmp_path, base)).fingerprint
    rewritten = base.replace("#HttpOnly_", "") + row("__Secure-1PSIDTS", "rotates-often")
    assert inspect(write(tmp_path, rewritten)).fingerprint == a
    assert inspect(write(tmp_path, cookie_jar(mark="OtherSession"))).fingerprint != a


def test_no_value_survives_in_the_report(tmp_path: Path) -> None:
    r = inspect(write(tmp_path, cookie_jar()))
    assert SECRET_MARK not in repr(r)
    assert all(SECRET_MARK not in str(getattr(r, f)) for f in r.__slots__)


# --- against yt-dlp's own loader -------------------------------------------------------------

_FIELD = st.sampled_from(
    [
        ".youtube.com",
        "youtube.com",
        "www.youtube.com",
        ".google.com",
        "TRUE",
        "FALSE",
        "/",
        "/feed",
        "0",
        "",
        "1",
        str(FUTURE),
        f"{FUTURE}.25",
        "Session",
        "SID",
        "LOGIN_INFO",
        "SAPISID",
        "v a l",
        "x=y;z",
        "#HttpOnly_.youtube.com",
        "#HttpOnly_#HttpOnly_.youtube.com",
        ".YouTube.COM",
        "  ",
        "0.5",
        "9" * 400,
        "9" * 308,
        "1e400",
        "-5",
    ]
)
_LINE = st.one_of(
    st.lists(_FIELD, min_size=7, max_size=7).map("\t".join),
    st.lists(_FIELD, min_size=1, max_size=9).map("\t".join),
    st.sampled_from(["", "# comment", "#HttpOnly_", "$x", "   ", HEADER.strip(), "[", " {"]),
    st.text(max_size=30),
)


def _ytdlp_load(text: str) -> tuple[int, set[str], int] | None:
    """What yt-dlp's YoutubeDLCookieJar makes of `text`: (cookie count, login names, skipped
    lines) or None."""
    import warnings

    from yt_dlp.cookies import YoutubeDLCookieJar

    jar = YoutubeDLCookieJar()
    stderr = io.StringIO()
    with (
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
        warnings.catch_warnings(action="ignore"),
    ):
        try:
            jar.open = lambda *a, **k: io.StringIO(text)  # type: ignore[method-assign]
            jar.load("in-memory")
        except Exception:
            return None
    youtube = {".youtube.com", "youtube.com", "www.youtube.com", ".www.youtube.com"}
    login = {c.name for c in jar if c.name in LOGIN_NAMES and c.domain in youtube and c.path == "/"}
    return len(jar), login, stderr.getvalue().count("skipping cookie file entry")


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_LINE, max_size=8),
    header=st.sampled_from([HEADER, "# HTTP Cookie File\n", "", "junk\n" + HEADER, "\n" + HEADER]),
)
def test_agrees_with_ytdlp_loader(tmp_path: Path, lines: list[str], header: str) -> None:
    text = header + "\n".join(lines)
    # Exotic line separators: str.splitlines and universal newlines disagree, and neither is a
    # file anybody writes; keep to the separators a cookie file really has.
    text = text.translate({ord(c): " " for c in "\r\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e"})
    r = inspect(write(tmp_path, text))  # must never raise
    expected = _ytdlp_load(text)
    if "\0" in text:  # the one deliberate difference: NUL bytes mean a binary file to us
        assert r.error == "binary content (NUL bytes)"
    elif expected is None:
        assert not r.valid, text
    else:
        assert r.valid, (text, r.error)
        count, login_names, skipped = expected
        assert r.cookies == count, text
        assert set(r.login_cookies) == login_names, text
        assert r.malformed_lines == skipped, text


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_never_raises_on_any_bytes(tmp_path: Path, data: bytes) -> None:
    r = inspect(write(tmp_path, data))
    assert r.exists and (r.valid or r.error)


def test_whitespace_only_jar_is_not_called_json(tmp_path: Path) -> None:
    r = inspect(write(tmp_path, " \n\t\n   \r\n"))
    assert r.error == "not a Netscape cookie file (only whitespace)"
    assert r.problem() is Reason.CORRUPT_COOKIES


def test_first_line_yt_dlp_keeps_must_be_the_header(tmp_path: Path) -> None:
    # yt-dlp drops a malformed first line before it looks for the header.
    r = inspect(write(tmp_path, "junk\n" + HEADER + row("LOGIN_INFO") + row("SAPISID")))
    assert r.valid and r.logged_in and r.malformed_lines == 1


def test_indented_comment_with_seven_fields_is_a_comment(tmp_path: Path) -> None:
    # The first pass splits it (it does not start with "#"), the second skips it (it strips first).
    text = HEADER + " \t#x\t.youtube.com\tTRUE\t0\tSID\tv\n" + row("SID")
    r = inspect(write(tmp_path, text))
    assert r.cookies == 1 == _ytdlp_count(text) and r.malformed_lines == 0


def test_domain_case_does_not_make_two_cookies(tmp_path: Path) -> None:
    text = HEADER + row("SID", domain=".YouTube.com") + row("SID", domain=".youtube.com")
    assert inspect(write(tmp_path, text)).cookies == 1 == _ytdlp_count(text)


def test_fingerprint_key_is_the_callers(tmp_path: Path) -> None:
    p = write(tmp_path, cookie_jar())
    a, b = inspect(p, key=b"k" * 32), inspect(p, key=b"k" * 32)
    assert a.fingerprint is not None and a.fingerprint == b.fingerprint
    assert inspect(p, key=b"other-key").fingerprint != a.fingerprint
    assert inspect(p).fingerprint not in (None, a.fingerprint)  # the process's own key


# --- times out of range ----------------------------------------------------------------------


def _ytdlp_count(text: str) -> int | None:
    loaded = _ytdlp_load(text)
    return None if loaded is None else loaded[0]


def test_expiry_beyond_a_float_rejects_the_file_as_yt_dlp_does(tmp_path: Path) -> None:
    text = HEADER + row("LOGIN_INFO", expires="9" * 400) + row("SAPISID")
    r = inspect(write(tmp_path, text))
    assert r.error == "a cookie's expiry is out of range" and r.login_expires_at is None
    assert r.problem() is Reason.CORRUPT_COOKIES
    assert _ytdlp_load(text) is None  # yt-dlp: "invalid Netscape format cookies file"


def test_expiry_beyond_datetime_is_clamped(tmp_path: Path) -> None:
    text = HEADER + row("LOGIN_INFO", expires="9" * 308) + row("SAPISID", expires="9" * 20)
    r = inspect(write(tmp_path, text))
    assert r.logged_in and r.login_expires_at == MAX_TIMESTAMP
    for tz in (datetime.UTC, datetime.timezone(datetime.timedelta(hours=14))):
        assert datetime.datetime.fromtimestamp(r.login_expires_at, tz).year == 9999
    assert _ytdlp_count(text) == 2


@pytest.mark.parametrize("expires", ["1e400", "-5", "inf", "nan"])
def test_non_numeric_expiry_is_a_malformed_line(tmp_path: Path, expires: str) -> None:
    text = HEADER + row("LOGIN_INFO", expires=expires) + row("SAPISID")
    r = inspect(write(tmp_path, text))
    assert r.valid and r.malformed_lines == 1 and r.login_cookies == ("SAPISID",)
    assert r.login_expires_at is not None and math.isfinite(r.login_expires_at)
    assert _ytdlp_count(text) == 1


def test_mtime_beyond_datetime_is_clamped() -> None:
    # tmpfs keeps any 64-bit mtime (ext4 clamps to 2446 itself), so this is the real thing.
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        p = write(Path(d), cookie_jar())
        os.utime(p, (0, 1e15))
        assert os.stat(p).st_mtime == 1e15
        r = inspect(p)
        assert r.valid and r.mtime == MAX_TIMESTAMP
        os.utime(p, (0, -1e10))
        assert inspect(p).mtime == 0.0


# --- long lines are read in pieces -----------------------------------------------------------


def test_huge_cookie_value_is_streamed_and_agrees_with_ytdlp(tmp_path: Path) -> None:
    big = "v" * (3 * LINE_MAX + 17)
    text = HEADER + row("LOGIN_INFO", big) + row("", big) + row("SAPISID") + "# tail\n"
    r = inspect(write(tmp_path, text))
    assert r.valid and r.logged_in and r.cookies == 3 == _ytdlp_count(text)
    other = inspect(write(tmp_path, text.replace(big, big[:-1] + "w"), "other.txt"))
    assert other.cookies == 3 and other.fingerprint != r.fingerprint  # the value still counts


@pytest.mark.parametrize(
    ("line", "cookies", "malformed", "error"),
    [
        ("#" + "c" * 2 * LINE_MAX, 1, 0, None),  # a comment
        (" " * 2 * LINE_MAX, 1, 0, None),  # blank
        (" " * LINE_MAX + "x" * LINE_MAX, 1, 1, None),  # one field
        ("\t".join(["x"] * 9) + "x" * 2 * LINE_MAX, 1, 1, None),  # nine fields
        ("[" + "1," * LINE_MAX + "1]", 1, 0, "JSON"),
        ("x" * 2 * LINE_MAX + "\tTRUE\t/\tTRUE\t0\tn\tv", 1, 1, None),  # not yt-dlp's: see docs
    ],
)
def test_long_lines(
    tmp_path: Path, line: str, cookies: int, malformed: int, error: str | None
) -> None:
    r = inspect(write(tmp_path, HEADER + row("SID") + line + "\n"))
    assert (r.error is None) if error is None else (error in (r.error or ""))
    if error is None:
        assert r.cookies == cookies and r.malformed_lines == malformed


def test_long_header_line(tmp_path: Path) -> None:
    r = inspect(write(tmp_path, HEADER.strip() + "x" * 2 * LINE_MAX + "\n" + row("SID")))
    assert r.valid and r.cookies == 1


# --- what sits at the path -------------------------------------------------------------------


def _in_thread(fn: Callable[[], T], fifo: Path | None = None, timeout: float = 5.0) -> T:
    """Run `fn` where a blocking open cannot hang the test run: fail instead."""
    result: list[T] = []
    worker = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        if fifo is not None:  # a writer's open releases a reader stuck in open(), EOF its read
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        raise AssertionError("inspect blocked")
    return result[0]


def test_fifo_at_the_path_never_blocks(tmp_path: Path) -> None:
    p = tmp_path / "cookies.txt"
    os.mkfifo(p)
    r = _in_thread(lambda: inspect(p), p)
    assert r.exists and r.file_type == "fifo" and r.problem() is Reason.NOT_A_FILE
    assert r.error == "not a file (fifo)" and r.conclusive


def test_fifo_swapped_in_after_the_stat_is_refused_after_the_open(tmp_path: Path) -> None:
    # The stat saw a regular file; a FIFO is there at open time. The open must not block (no
    # writer ever comes) and the opened descriptor's type must be checked.
    p = tmp_path / "cookies.txt"
    base = inspect(write(tmp_path, cookie_jar()))
    p.unlink()
    os.mkfifo(p)
    r = _in_thread(lambda: cookiefile._inspect_opened(p, base, time.time(), b"k"), p)
    assert r.file_type == "fifo" and r.problem() is Reason.NOT_A_FILE


def test_regular_and_fifo_swapped_back_and_forth(tmp_path: Path) -> None:
    p = tmp_path / "cookies.txt"
    stop = threading.Event()

    def swap() -> None:
        i = 0
        while not stop.is_set():
            tmp = tmp_path / f"next{i % 2}"
            if i % 2:
                os.mkfifo(tmp)
            else:
                tmp.write_text(cookie_jar())
            os.replace(tmp, p)
            i += 1

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    try:
        wait_for(p.exists, what="first swap")
        seen: set[Reason | None] = set()
        for i in range(5000):  # at least 200 looks, and until both kinds were seen
            seen.add(_in_thread(lambda: inspect(p), p).problem())
            if i >= 200 and len(seen) >= 2:
                break
    finally:
        stop.set()
        swapper.join(5)
    assert seen <= {None, Reason.NOT_A_FILE}, seen
    assert None in seen and Reason.NOT_A_FILE in seen


def test_socket_and_device_are_not_files(tmp_path: Path) -> None:
    sock_path = tmp_path / "s"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        r = inspect(sock_path)
    assert r.file_type == "socket" and r.problem() is Reason.NOT_A_FILE
    link = tmp_path / "dev"
    link.symlink_to("/dev/zero")  # an endless read, if it were ever read
    r = _in_thread(lambda: inspect(link))
    assert r.file_type == "character device" and r.problem() is Reason.NOT_A_FILE


def test_symlinked_jar_is_followed(tmp_path: Path) -> None:
    # A Kubernetes secret: cookies.txt -> ..data/cookies.txt, ..data -> ..2026_11_25/
    real = tmp_path / "..2026_11_25"
    real.mkdir()
    write(real, cookie_jar())
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "cookies.txt").symlink_to("..data/cookies.txt")
    assert inspect(tmp_path / "cookies.txt").logged_in
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to("nowhere")
    assert inspect(dangling).problem() is Reason.MISSING_COOKIES
    loop = tmp_path / "loop.txt"
    loop.symlink_to("loop.txt")
    assert inspect(loop).problem() is Reason.NOT_A_FILE


# --- OS errors, for real, in a child process -------------------------------------------------

_CHILD = """
import json, os, resource, sys, time
sys.path.insert(0, {daemon!r})
from cookie_supervisor import cookiefile

def inspect(path):
    return cookiefile.inspect(path, time.time())

def show(r):
    problem = r.problem()
    return dict(exists=r.exists, error=r.error, os_error=r.os_error, denied=r.denied,
                conclusive=r.conclusive, problem=problem and problem.value, size=r.size)
"""


def _child(body: str, **kw: object) -> Any:
    code = _CHILD.format(daemon=str(ROOT / "daemon")) + body.format(**kw)
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(out.stdout)


def test_permission_denied_is_unreadable_not_missing() -> None:
    # Root reads everything, so the child drops to nobody before it looks.
    with tempfile.TemporaryDirectory(dir="/tmp") as d:  # not under a private TMPDIR
        top = Path(d)
        os.chmod(top, 0o755)  # noqa: S103 - nobody must reach the jar to be refused by it
        jar = write(top, cookie_jar())
        os.chmod(jar, 0o600)
        closed = top / "closed"
        closed.mkdir(mode=0o700)
        write(closed, cookie_jar())
        got = _child(
            """
os.setgroups([]); os.setegid(65534); os.seteuid(65534)
print(json.dumps([show(inspect({jar!r})), show(inspect({hidden!r}))]))
""",
            jar=str(jar),
            hidden=str(closed / "cookies.txt"),
        )
    for r in got:
        assert r["exists"] and r["denied"] and r["conclusive"]
        assert r["problem"] == "unreadable" and r["error"] == "permission denied"
    assert got[0]["size"] == len(cookie_jar())  # the stat worked, the open did not


def test_descriptor_exhaustion_is_no_evidence(tmp_path: Path) -> None:
    jar = write(tmp_path, cookie_jar())
    got = _child(
        """
resource.setrlimit(resource.RLIMIT_NOFILE, (32, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
held = []
try:
    while True:
        held.append(os.open("/dev/null", os.O_RDONLY))
except OSError:
    pass
starved = show(inspect({jar!r}))
os.close(held.pop())
print(json.dumps([starved, show(inspect({jar!r}))]))
""",
        jar=str(jar),
    )
    starved, recovered = got
    assert starved["os_error"] == "EMFILE" and not starved["conclusive"]
    assert starved["problem"] is None and "EMFILE" in starved["error"]
    assert recovered["conclusive"] and recovered["problem"] is None and recovered["error"] is None
