"""What a Netscape cookie file says about its login session, read the way yt-dlp reads it.

A report holds names, counts, times and a keyed fingerprint — never a cookie value. The parser
mirrors `YoutubeDLCookieJar.load` + `MozillaCookieJar._really_load` (yt-dlp 2026.10; the rules are
in docs/ytdlp.md, "The cookie file as yt-dlp reads it"): a first pass drops lines with the wrong
field count or a non-numeric expiry (or rejects the whole file for a JSON-looking one), and the
first line it keeps must be the header; `#HttpOnly_` is stripped, other `#`/`$` lines and blank
lines are comments, an include-subdomains flag that disagrees with the domain's leading dot or an
expiry beyond a float's range rejects the whole file.

Reading is careful because the path is not ours: it is stat'ed and only a regular file is opened
(non-blocking, so a FIFO swapped in between can never block), the opened descriptor is checked
again, and the text is parsed line by line, keeping only what the report needs. An OS error that
says nothing about the file (EMFILE, ENOMEM, EIO...) gives a report with `os_error` set and no
verdict on the cookies.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import io
import os
import re
import secrets
import stat
from array import array
from dataclasses import dataclass, field, replace
from pathlib import Path

from cookie_supervisor import safefile
from cookie_supervisor.model import CookieReport

MAX_BYTES = 16 * 1024 * 1024
# Longer lines are read in pieces; no browser writes a cookie anywhere near this (they cap one at
# 4 KiB), so only a hostile file pays the approximation described in docs/ytdlp.md.
LINE_MAX = 64 * 1024
# Times a report may hold: `datetime` converts them in any time zone, with room for arithmetic.
MAX_TIMESTAMP = 253_370_764_800.0  # 9999-01-01T00:00:00Z
_CHUNK = 64 * 1024
_HEADER = re.compile(r"#( Netscape)? HTTP Cookie File")
_EXPIRES = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_HTTPONLY = "#HttpOnly_"
_BINARY = "binary content (NUL bytes)"
# Domains whose cookies yt-dlp sends to https://www.youtube.com (see docs/ytdlp.md).
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

# Used when the caller has no key of its own: a fingerprint then means nothing outside this process.
_FINGERPRINT_KEY = secrets.token_bytes(32)

# What an errno says. Only these are evidence about the path; any other error (EMFILE, ENFILE,
# ENOMEM, EIO, ENOBUFS, EAGAIN, EINTR, ESTALE, ...) is the daemon's or the disk's trouble.
_MISSING = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG})
_DENIED = frozenset({errno.EACCES, errno.EPERM})
_FILE_TYPES = {
    stat.S_IFREG: "file",
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


class _Invalid(Exception):
    """The whole file is unusable; the message is safe to show (it never quotes a line)."""


def inspect(path: Path | str, now: float, *, key: bytes | None = None) -> CookieReport:
    """Inspect `path`. Never raises for anything the file contains or lacks, nor for OS errors.

    `now` is the caller's wall clock (the runtime's, which the core steps on): the login is
    judged at it, never on a clock of this module's. `key` keys the session fingerprint (HMAC),
    so fingerprints can outlive the process.
    """
    path = Path(path)
    key = _FINGERPRINT_KEY if key is None else key
    for _attempt in range(3):
        try:
            return _inspect(path, now, key)
        except _Swapped:
            continue  # the file became a symlink between stat and open: look again
    return _failed(path, OSError(errno.EAGAIN, "the path kept changing while it was opened"))


class _Swapped(Exception):
    pass


def _inspect(path: Path, now: float, key: bytes) -> CookieReport:
    try:
        # Look before opening: opening a device can have effects, and one at the path is refused.
        st = os.stat(path)
    except OSError as exc:
        return _failed(path, exc)
    if not stat.S_ISREG(st.st_mode):
        return _not_a_file(path, st)
    return _inspect_opened(path, _stat_report(path, st), now, key)


def _inspect_opened(path: Path, base: CookieReport, now: float, key: bytes) -> CookieReport:
    """Open and read what is at `path` now; the stat'ed `base` may be stale by then.

    A path that *is* a symlink (a Kubernetes secret's `..data/` chain, an operator's link) is
    followed on purpose; one swapped in for a file since the stat is not (ELOOP: look again).
    """
    try:
        with safefile.open_regular(path, follow=os.path.islink(path)) as (fd, st):
            base = _stat_report(path, st)
            if st.st_size > MAX_BYTES:
                return replace(base, error=str(safefile.TooLarge(MAX_BYTES, st.st_size)))
            return _report(base, _parse(fd), now, key)
    except safefile.NotRegular as exc:
        return _not_a_file(path, exc.stat)
    except (_Invalid, safefile.TooLarge) as exc:
        return replace(base, error=str(exc))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _Swapped from None
        return _failed(path, exc, base)


def _stat_report(path: Path, st: os.stat_result) -> CookieReport:
    return CookieReport(
        path=path,
        exists=True,
        size=st.st_size,
        mtime=_clamp(st.st_mtime),
        mode=stat.S_IMODE(st.st_mode),
        file_type=_FILE_TYPES.get(stat.S_IFMT(st.st_mode), "unknown"),
    )


def _not_a_file(path: Path, st: os.stat_result) -> CookieReport:
    base = _stat_report(path, st)
    kind = base.file_type or "unknown"
    return replace(base, error="is a directory" if kind == "directory" else f"not a file ({kind})")


def _failed(path: Path, exc: OSError, base: CookieReport | None = None) -> CookieReport:
    code = exc.errno or 0
    name = errno.errorcode.get(code, f"errno {code}")
    if code in _MISSING:
        return CookieReport(path=path, exists=False)
    base = base or CookieReport(path=path, exists=True)
    if code in _DENIED:
        return replace(base, denied=True, error="permission denied")
    if code == errno.ELOOP:  # from stat: the path is a loop of symlinks
        return replace(base, file_type="unknown", error="not a file (symbolic link loop)")
    return replace(base, os_error=name, error=f"cannot read: {name} ({os.strerror(code)})")


def _clamp(t: float) -> float:
    return min(max(t, 0.0), MAX_TIMESTAMP)


# --- reading -------------------------------------------------------------------------------


def _parse(fd: int) -> _Scan:
    """Stream the file through the scanner. Precedence: too large, NUL bytes, UTF-8, syntax."""
    scan = _Scan()
    # Universal newlines and strict UTF-8, exactly as the text-mode file yt-dlp opens.
    text = io.TextIOWrapper(
        io.BufferedReader(safefile.Bounded(fd, MAX_BYTES), _CHUNK),
        encoding="utf-8",
        errors="strict",
        newline=None,
    )
    pending: _LongLine | None = None
    try:
        while chunk := text.readline(LINE_MAX):
            if "\0" in chunk:
                raise _Invalid(_BINARY)
            scan.empty = False
            if pending is not None:
                pending.add(chunk.removesuffix("\n"))
            elif chunk.endswith("\n"):
                scan.line(chunk[:-1])
                continue
            else:
                pending = _LongLine(chunk)
            if chunk.endswith("\n"):
                scan.long_line(pending)
                pending = None
        if pending is not None:
            scan.long_line(pending)
    except UnicodeDecodeError:
        raise _Invalid(_BINARY if _has_nul(fd) else "not UTF-8 text") from None
    if error := scan.verdict():
        raise _Invalid(error)
    return scan


def _has_nul(fd: int) -> bool:
    offset = 0
    while offset <= MAX_BYTES and (data := os.pread(fd, _CHUNK, offset)):
        if b"\0" in data:
            return True
        offset += len(data)
    return False


# --- parsing -------------------------------------------------------------------------------


class _Distinct:
    """Counts distinct 64-bit hashes in an open-addressing table held in one array: at most 16
    bytes a cookie, where a set of string tuples cost ~300 (a 16 MiB jar can hold 670 000)."""

    __slots__ = ("_mask", "_table", "count")

    def __init__(self) -> None:
        self._mask = 63
        self._table = array("Q", [0]) * 64
        self.count = 0

    def add(self, h: int) -> None:
        h = (h & 0xFFFF_FFFF_FFFF_FFFF) or 1  # 0 marks a free slot
        table, mask = self._table, self._mask
        i = (h ^ (h >> 31)) & mask
        while (v := table[i]) != h:
            if not v:
                table[i] = h
                self.count += 1
                if self.count * 2 > mask:
                    self._grow()
                return
            i = (i + 1) & mask

    def _grow(self) -> None:
        old = self._table
        self._mask = mask = self._mask * 2 + 1
        self._table = table = array("Q", [0]) * (mask + 1)
        for h in old:
            if h:
                i = (h ^ (h >> 31)) & mask
                while table[i]:
                    i = (i + 1) & mask
                table[i] = h


@dataclass(slots=True)
class _Scan:
    """yt-dlp's two passes over the lines in one: what survives is counts and login cookies."""

    keys: _Distinct = field(default_factory=_Distinct)  # a jar holds one cookie per key
    malformed: int = 0
    # name → (expiry or None for a session cookie, sha256 of the value or None if empty):
    # youtube.com login cookies only; their values never stay in memory.
    login: dict[str, tuple[int | None, bytes | None]] = field(default_factory=dict)
    empty: bool = True
    blank: bool = True  # nothing but whitespace so far
    header: bool = False  # the first line yt-dlp kept was the header
    json: bool = False  # yt-dlp's first pass stops here and rejects the whole file
    fatal: str | None = None  # the stdlib loader stopped here and rejected the whole file

    def line(self, raw: str) -> None:
        """One line, without its newline. First pass: yt-dlp's `prepare_line`."""
        if self.json:
            return
        if self.blank and raw and not raw.isspace():
            self.blank = False
        line = raw.removeprefix(_HTTPONLY)
        if line.startswith("#") or not line or line.isspace():
            self._load(line)
            return
        fields = line.split("\t")
        if len(fields) != 7 or (fields[4] and not _EXPIRES.fullmatch(fields[4])):
            self._skip(raw.lstrip()[:1])
            return
        self._load(line, fields)

    def long_line(self, long: _LongLine) -> None:
        """A line over LINE_MAX, judged from its head and the tail's counts (docs/ytdlp.md)."""
        if not long.tail:
            self.line(long.head)
            return
        first = long.head.lstrip()[:1] or long.tail_first
        if not first:
            self.line("")
            return
        self.blank = False
        if self.json:
            return
        if long.line.startswith("#"):
            if not self.header or long.line.removeprefix(_HTTPONLY).lstrip()[:1] in ("#", "$"):
                self.line(long.head)  # the header (or not), or a comment both passes skip
            else:
                self.malformed += 1  # "#HttpOnly_#HttpOnly_" and a huge cookie: nobody's file
        elif long.head.count("\t") + long.tail_tabs != 6:
            self._skip(first)
        elif long.value is None:
            self.malformed += 1  # a huge domain, path, name or expiry: no cookie anybody wrote
        else:
            # The value replaced by its digest: NUL cannot occur in a line, so no real value
            # equals the stand-in, and the key and fingerprint still follow the value.
            prefix = long.head[: len(long.head) - len(long.line)]
            self.line(prefix + "\t".join(long.fields) + "\t\0" + long.value.hexdigest())

    def _skip(self, first: str) -> None:
        if first in ("[", "{", '"'):
            self.json = True  # "Cookies file must be Netscape formatted, not JSON"
        else:
            self.malformed += 1  # yt-dlp prints "skipping cookie file entry" and drops it

    def _load(self, line: str, fields: list[str] | None = None) -> None:
        """Second pass: the stdlib's `MozillaCookieJar._really_load` on a line the first kept
        (`fields` when the first pass split and checked it, None for a comment or blank line)."""
        if self.fatal is not None:
            return
        if not self.header:
            self.header = bool(_HEADER.match(line))
            if not self.header:
                self.fatal = "missing header line"
            return
        if fields is None:
            if not line.startswith(_HTTPONLY):
                return
            line = line[len(_HTTPONLY) :]  # the stdlib strips it again: "#HttpOnly_#HttpOnly_x"
            if line.lstrip()[:1] in ("", "#", "$"):
                return
            fields = line.split("\t")
            if len(fields) != 7:
                self.fatal = "a line the loader cannot split"
                return
            checked = False
        else:
            first = line[:1]
            if first.isspace():
                first = line.lstrip()[:1]
            if first in ("#", "$"):
                return  # the stdlib's comment: "$x", or " #x" that the first pass split
            checked = True
        domain, subdomains, path, _secure, expires, name, value = fields
        if (subdomains == "TRUE") != domain.startswith("."):
            self.fatal = "include-subdomains flag disagrees with the domain's leading dot"
            return
        if expires and (not checked or len(expires) > 300):
            try:
                int(float(expires))  # what http.cookiejar.Cookie does; 1e309 overflows
            except (ValueError, OverflowError):
                self.fatal = "a cookie's expiry is out of range"
                return
        # http.cookiejar reads a nameless `Set-Cookie: foo` line as the cookie named "foo".
        cname, cvalue = (name, value) if name else (value, "")
        domain = domain.lower()  # so does http.cookiejar.Cookie
        self.keys.add(hash((domain, path, cname)))
        if cname in LOGIN_NAMES and domain in _YOUTUBE_DOMAINS and path == "/":
            expiry = int(float(expires)) if expires else None
            digest = hashlib.sha256(cvalue.encode()).digest() if cvalue else None
            self.login[cname] = (expiry or None, digest)  # yt-dlp: expiry 0 is a session cookie

    def verdict(self) -> str | None:
        """Why yt-dlp would reject the whole file, in the order it would notice."""
        if self.json:
            return "JSON, not Netscape format"
        if not self.header:
            kind = "empty file" if self.empty else "only whitespace" if self.blank else None
            return f"not a Netscape cookie file ({kind or 'missing header line'})"
        return self.fatal


class _LongLine:
    """A line longer than LINE_MAX: its head, and counts of the rest, in bounded memory."""

    __slots__ = ("fields", "head", "line", "tail", "tail_first", "tail_tabs", "value")

    def __init__(self, head: str) -> None:
        self.head = head
        self.line = head.removeprefix(_HTTPONLY)
        parts = self.line.split("\t", 6)
        self.fields = parts[:6]
        self.value = hashlib.sha256(parts[6].encode()) if len(parts) == 7 else None
        self.tail = 0
        self.tail_tabs = 0
        self.tail_first = ""

    def add(self, text: str) -> None:
        self.tail += len(text)
        tabs = text.count("\t")
        if self.value is not None and not self.tail_tabs and not tabs:
            self.value.update(text.encode())
        self.tail_tabs += tabs
        if not self.tail_first:
            self.tail_first = text.lstrip()[:1]


# --- the report ----------------------------------------------------------------------------


def _report(base: CookieReport, jar: _Scan, now: float, key: bytes) -> CookieReport:
    def alive(name: str) -> bool:
        entry = jar.login.get(name)
        return entry is not None and entry[1] is not None and (entry[0] is None or entry[0] > now)

    def present(name: str) -> bool:
        return name in jar.login and jar.login[name][1] is not None

    has_pair = present(LOGIN_INFO) and any(present(n) for n in SAPISID_NAMES)
    logged_in = alive(LOGIN_INFO) and any(alive(n) for n in SAPISID_NAMES)
    until: float | None = None
    if has_pair:  # the pair holds until LOGIN_INFO or the last present SAPISID expires
        sapisid = [jar.login[n][0] for n in SAPISID_NAMES if present(n)]
        last = None if any(e is None for e in sapisid) else max(e for e in sapisid if e)
        ends = [e for e in (jar.login[LOGIN_INFO][0], last) if e is not None]
        until = _clamp(min(ends)) if ends else None
    expiries = [exp for exp, _ in jar.login.values() if exp is not None]
    return replace(
        base,
        cookies=jar.keys.count,
        malformed_lines=jar.malformed,
        login_cookies=tuple(sorted(jar.login)),
        login_expires_at=_clamp(min(expiries)) if expiries else None,
        logged_in=logged_in,
        login_expired=has_pair and not logged_in,
        login_pair=has_pair,
        login_until=until,
        fingerprint=_fingerprint(jar, key) if logged_in else None,
    )


def _fingerprint(jar: _Scan, key: bytes) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for name in sorted(SESSION_NAMES & jar.login.keys()):
        mac.update(f"{name}\0".encode() + (jar.login[name][1] or b"") + b"\0")
    return mac.hexdigest()[:32]
