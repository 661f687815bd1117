"""What a Netscape cookie file says about its login session, read the way yt-dlp reads it.

A report holds names, counts, times and a keyed fingerprint — never a cookie value. The parser
mirrors `YoutubeDLCookieJar.load` + `MozillaCookieJar._really_load` (yt-dlp 2026.10): the header
must open the first line, `#HttpOnly_` is stripped, other `#`/`$` lines and blank lines are
comments, a cookie line has exactly seven TAB-separated fields with a numeric (or empty) expiry,
and an include-subdomains flag that disagrees with the domain's leading dot rejects the whole file.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import secrets
import stat
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from cookie_supervisor.classify import Reason

MAX_BYTES = 16 * 1024 * 1024
_HEADER = re.compile(r"#( Netscape)? HTTP Cookie File")
_EXPIRES = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_HTTPONLY = "#HttpOnly_"
# Domains whose cookies yt-dlp sends to https://www.youtube.com (see ytdlp-cookies.md §3).
_YOUTUBE_DOMAINS = frozenset({".youtube.com", "youtube.com", "www.youtube.com", ".www.youtube.com"})

# yt-dlp's "logged in" rule: LOGIN_INFO plus one of these, unexpired.
LOGIN_INFO = "LOGIN_INFO"
SAPISID_NAMES = ("SAPISID", "__Secure-3PAPISID", "__Secure-1PAPISID")
# The session's identity. The *PSIDTS / *SIDCC cookies are left out on purpose: YouTube re-issues
# them on ordinary requests, so including them would make every backend download look like a new
# login session.
SESSION_NAMES = frozenset(
    {
        LOGIN_INFO,
        *SAPISID_NAMES,
        "SID",
        "HSID",
        "SSID",
        "APISID",
        "__Secure-1PSID",
        "__Secure-3PSID",
    }
)
LOGIN_NAMES = SESSION_NAMES | {
    "__Secure-1PSIDTS",
    "__Secure-3PSIDTS",
    "SIDCC",
    "__Secure-1PSIDCC",
    "__Secure-3PSIDCC",
}

# Per process, so a fingerprint means nothing outside this daemon and cannot be tested offline.
_FINGERPRINT_KEY = secrets.token_bytes(32)


@dataclass(frozen=True, slots=True)
class CookieReport:
    """One inspection of a cookie file. `error` says why it is unusable, if it is."""

    path: Path
    exists: bool
    error: str | None = None
    size: int | None = None
    mtime: float | None = None
    mode: int | None = None
    cookies: int = 0
    malformed_lines: int = 0
    login_cookies: tuple[str, ...] = ()
    login_expires_at: float | None = None
    logged_in: bool = False
    login_expired: bool = False
    fingerprint: str | None = field(default=None, repr=False)
    inspected_at: float = field(default_factory=time.time)

    @property
    def valid(self) -> bool:
        return self.exists and self.error is None

    @property
    def secure_permissions(self) -> bool | None:
        return None if self.mode is None else not self.mode & 0o077

    def problem(self) -> Reason | None:
        """What is wrong with the jar before any network check (yt-dlp itself stays silent)."""
        if not self.exists:
            return Reason.MISSING_COOKIES
        if self.error is not None:
            return Reason.CORRUPT_COOKIES
        if self.logged_in:
            return None
        return Reason.EXPIRED if self.login_expired else Reason.LOGGED_OUT


class _Invalid(Exception):
    """The whole file is unusable; the message is safe to show (it never quotes a line)."""


@dataclass(slots=True)
class _Jar:
    keys: set[tuple[str, str, str]] = field(default_factory=set)  # a jar holds one per key
    malformed: int = 0
    # name → (expires or None for a session cookie, value): youtube.com login cookies only
    login: dict[str, tuple[float | None, str]] = field(default_factory=dict)


def inspect(path: Path | str, now: float | None = None) -> CookieReport:
    """Inspect `path`. Never raises for anything the file contains or lacks."""
    path = Path(path)
    now = time.time() if now is None else now
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return CookieReport(path=path, exists=False)
    except OSError as exc:
        return CookieReport(path=path, exists=False, error=exc.strerror or "cannot stat")
    base = CookieReport(
        path=path, exists=True, size=st.st_size, mtime=st.st_mtime, mode=stat.S_IMODE(st.st_mode)
    )
    try:
        jar = _parse(_read(path, st))
    except _Invalid as exc:
        return replace(base, error=str(exc))
    return _report(base, jar, now)


def _read(path: Path, st: os.stat_result) -> str:
    if stat.S_ISDIR(st.st_mode):
        raise _Invalid("is a directory")
    if not stat.S_ISREG(st.st_mode):
        raise _Invalid("not a regular file")
    if st.st_size > MAX_BYTES:
        raise _Invalid(f"too large ({st.st_size} bytes, limit {MAX_BYTES})")
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise _Invalid(exc.strerror or "unreadable") from None
    if len(data) > MAX_BYTES:  # grew between stat and read
        raise _Invalid(f"too large (over {MAX_BYTES} bytes)")
    if b"\0" in data:
        raise _Invalid("binary content (NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Invalid("not UTF-8 text") from None


def _parse(text: str) -> _Jar:
    # Universal newlines, exactly as the text-mode file yt-dlp opens.
    lines = io.StringIO(text, newline=None)
    first = lines.readline()
    if not _HEADER.match(first):
        kind = (
            "empty file"
            if not text
            else "JSON, not Netscape format"
            if text.lstrip()[:1] in "[{"
            else ""
        )
        raise _Invalid(f"not a Netscape cookie file ({kind or 'missing header line'})")
    jar = _Jar()
    for raw in lines:
        _parse_line(raw.rstrip("\n"), jar)
    return jar


def _parse_line(raw: str, jar: _Jar) -> None:
    line = raw.removeprefix(_HTTPONLY)
    if not line.strip() or line.strip().startswith(("#", "$")):
        return
    fields = line.split("\t")
    if len(fields) != 7 or (fields[4] and not _EXPIRES.fullmatch(fields[4])):
        if raw.strip()[:1] in ("[", "{", '"'):
            raise _Invalid("JSON, not Netscape format")  # yt-dlp rejects the whole file too
        jar.malformed += 1  # yt-dlp prints "skipping cookie file entry" and drops it
        return
    domain, subdomains, path, _secure, expires, name, value = fields
    if (subdomains == "TRUE") != domain.startswith("."):
        raise _Invalid("include-subdomains flag disagrees with the domain's leading dot")
    # http.cookiejar reads a nameless `Set-Cookie: foo` line as the cookie named "foo".
    jar.keys.add((domain, path, name or value))
    if name in LOGIN_NAMES and domain.lower() in _YOUTUBE_DOMAINS and path == "/":
        expiry = float(expires) if expires and float(expires) > 0 else None
        jar.login[name] = (expiry, value)


def _report(base: CookieReport, jar: _Jar, now: float) -> CookieReport:
    def alive(name: str) -> bool:
        entry = jar.login.get(name)
        return entry is not None and bool(entry[1]) and (entry[0] is None or entry[0] > now)

    def present(name: str) -> bool:
        return name in jar.login and bool(jar.login[name][1])

    has_pair = present(LOGIN_INFO) and any(present(n) for n in SAPISID_NAMES)
    logged_in = alive(LOGIN_INFO) and any(alive(n) for n in SAPISID_NAMES)
    expiries = [exp for exp, _ in jar.login.values() if exp is not None]
    return replace(
        base,
        cookies=len(jar.keys),
        malformed_lines=jar.malformed,
        login_cookies=tuple(sorted(jar.login)),
        login_expires_at=min(expiries) if expiries else None,
        logged_in=logged_in,
        login_expired=has_pair and not logged_in,
        fingerprint=_fingerprint(jar) if logged_in else None,
    )


def _fingerprint(jar: _Jar) -> str:
    mac = hmac.new(_FINGERPRINT_KEY, digestmod=hashlib.sha256)
    for name in sorted(SESSION_NAMES & jar.login.keys()):
        mac.update(f"{name}\0{jar.login[name][1]}\0".encode())
    return mac.hexdigest()[:32]
