"""The cookie-file parser, quirk by quirk, and against yt-dlp's own loader."""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cookie_supervisor.classify import Reason
from cookie_supervisor.cookiefile import LOGIN_NAMES, MAX_BYTES, inspect
from tests.support import SECRET_MARK, cookie_jar

HEADER = "# Netscape HTTP Cookie File\n"
FUTURE = int(time.time()) + 30 * 86400


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
    assert r.valid and r.cookies == 2 and r.logged_in and r.malformed_lines == 0


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
    d = inspect(tmp_path)
    assert d.exists and d.error == "is a directory"


def test_huge_file_is_not_read(tmp_path: Path) -> None:
    p = tmp_path / "huge.txt"
    with p.open("wb") as fh:
        fh.truncate(MAX_BYTES + 1)  # sparse: costs no disk, and would cost memory if read
    r = inspect(p)
    assert r.error is not None and "too large" in r.error and r.size == MAX_BYTES + 1


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
        "  ",
    ]
)
_LINE = st.one_of(
    st.lists(_FIELD, min_size=7, max_size=7).map("\t".join),
    st.lists(_FIELD, min_size=1, max_size=9).map("\t".join),
    st.sampled_from(["", "# comment", "#HttpOnly_", "$x", "   "]),
    st.text(max_size=30),
)


def _ytdlp_load(text: str) -> tuple[int, set[str]] | None:
    """What yt-dlp's YoutubeDLCookieJar makes of `text`: (cookie count, login names) or None."""
    import warnings

    from yt_dlp.cookies import YoutubeDLCookieJar

    jar = YoutubeDLCookieJar()
    with (
        contextlib.redirect_stderr(io.StringIO()),
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
    return len(jar), login


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(_LINE, max_size=8), header=st.sampled_from([HEADER, "# HTTP Cookie File\n", ""])
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
        count, login_names = expected
        assert r.cookies == count, text
        assert set(r.login_cookies) == login_names, text


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_never_raises_on_any_bytes(tmp_path: Path, data: bytes) -> None:
    r = inspect(write(tmp_path, data))
    assert r.exists and (r.valid or r.error)
