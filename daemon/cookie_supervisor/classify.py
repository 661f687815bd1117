"""Why a cookie check failed, and whether fresh cookies can fix it.

`Reason` is the vocabulary the whole daemon speaks: metric labels, job data, API answers and the
`trigger_on` setting all use these values. The pattern table below is the one place where text
printed by yt-dlp (or sent by the backend) is mapped onto a reason.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit


class Reason(StrEnum):
    # Failures fresh cookies can fix, strongest first (see `rank`).
    MISSING_COOKIES = "missing_cookies"
    CORRUPT_COOKIES = "corrupt_cookies"
    LOGGED_OUT = "logged_out"
    COOKIES_ROTATED = "cookies_rotated"
    EXPIRED = "expired"
    BOT_DETECTION = "bot_detection"
    AUTH_REQUIRED = "auth_required"
    FORBIDDEN = "forbidden"
    # Not failures: refreshes asked for ahead of time or by a person.
    EXPIRING_SOON = "expiring_soon"
    SCHEDULED_ROTATION = "scheduled_rotation"
    MANUAL = "manual"
    # Failures new cookies cannot fix: recorded, never a refresh.
    UNREADABLE = "unreadable"  # the daemon may not read the file (EACCES): permissions, not cookies
    NOT_A_FILE = "not_a_file"  # a directory, FIFO, socket or device sits at the jar's path
    IP_FLAGGED = "ip_flagged"  # the same failure without cookies: the address is blocked
    PO_TOKEN_REQUIRED = "po_token_required"  # noqa: S105 - formats need a PO token, cookies or not
    ACCOUNT_RESTRICTED = "account_restricted"  # works without cookies, not with them: the account
    NETWORK_ERROR = "network_error"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    NO_JS_RUNTIME = "no_js_runtime"  # the daemon found no JS runtime to hand yt-dlp
    JS_CHALLENGE_FAILED = "js_challenge_failed"  # yt-dlp could not solve YouTube's JS challenges
    OTHER = "other"

    @property
    def fixable(self) -> bool:
        """True when a refresh of the cookies is the remedy."""
        return self in _REFRESHABLE

    @property
    def rank(self) -> int:
        """Higher is stronger; used to keep the strongest owed reason while Redis is down."""
        return _RANK.get(self, 0)


_REFRESHABLE = frozenset(
    {
        Reason.MISSING_COOKIES,
        Reason.CORRUPT_COOKIES,
        Reason.LOGGED_OUT,
        Reason.COOKIES_ROTATED,
        Reason.EXPIRED,
        Reason.BOT_DETECTION,
        Reason.AUTH_REQUIRED,
        Reason.FORBIDDEN,
        Reason.EXPIRING_SOON,
        Reason.SCHEDULED_ROTATION,
        Reason.MANUAL,
    }
)

# Declaration order of the refreshable members is their strength: a dead file outranks a warning.
_RANK = {reason: len(_REFRESHABLE) - i for i, reason in enumerate(r for r in Reason if r.fixable)}

# What triggers a refresh unless a source's `trigger_on` says otherwise: every reason fresh
# cookies fix. `manual` is a person asking, which trigger_on does not govern.
DEFAULT_TRIGGERS = _REFRESHABLE - {Reason.MANUAL}


@dataclass(frozen=True, slots=True)
class Classification:
    reason: Reason
    pattern: str | None  # the table entry that matched, for logs and tests

    @property
    def fixable(self) -> bool:
        return self.reason.fixable


def strongest(a: Reason | None, b: Reason) -> Reason:
    """The reason to keep when two are owed for one source."""
    return b if a is None or b.rank > a.rank else a


# --- text → reason ----------------------------------------------------------------------------

# (pattern, reason), first match wins, matched against `normalize(text)`: lower case, straight
# quotes, single spaces. Plain substrings unless the entry is a compiled regex. Order is the
# point: the rate-limit text contains "video unavailable", the bot check contains "sign in",
# yt-dlp's OAuth notice contains the cookie hint, and weak one-word patterns come last.
PATTERNS: tuple[tuple[str | re.Pattern[str], Reason], ...] = (
    # the cookie file itself (yt-dlp's loader, and the backend's original pattern list)
    ("does not look like a netscape format cookies file", Reason.CORRUPT_COOKIES),
    ("cookies file must be netscape formatted", Reason.CORRUPT_COOKIES),
    ("invalid netscape format cookies file", Reason.CORRUPT_COOKIES),
    ("cookie file not found", Reason.MISSING_COOKIES),
    ("cookies file not found", Reason.MISSING_COOKIES),
    ("cookie file missing", Reason.MISSING_COOKIES),
    ("cookies file missing", Reason.MISSING_COOKIES),
    ("no cookie file", Reason.MISSING_COOKIES),
    # YouTube cleared the session: yt-dlp's warning (PR #13014)
    ("cookies are no longer valid", Reason.COOKIES_ROTATED),
    ("have likely been rotated", Reason.COOKIES_ROTATED),
    ("cookies have expired", Reason.EXPIRED),
    ("cookies expired", Reason.EXPIRED),
    # not about cookies at all: yt-dlp could not solve YouTube's n/signature challenges (no usable
    # JS runtime, no solver script, a solver too old for the player). Formats go missing, so the
    # "Requested format is not available" / "Only images are available" that follows such a
    # warning is its consequence; on their own those texts stay unexplained (see docs/ytdlp.md).
    ("n challenge solving failed", Reason.JS_CHALLENGE_FAILED),
    ("signature solving failed", Reason.JS_CHALLENGE_FAILED),
    ("no supported javascript runtime", Reason.JS_CHALLENGE_FAILED),
    ("may be required to solve js challenges", Reason.JS_CHALLENGE_FAILED),  # remote component
    (re.compile(r"error solving (?:n|sig|\d+) challenge requests?\b"), Reason.JS_CHALLENGE_FAILED),
    # yt-dlp's PO-token notices: they say "may yield HTTP Error 403", so before the 403s below
    ("require a gvs po token", Reason.PO_TOKEN_REQUIRED),
    ("require a po token which was not provided", Reason.PO_TOKEN_REQUIRED),
    ("unable to fetch gvs po token", Reason.PO_TOKEN_REQUIRED),
    ("rate-limited by youtube", Reason.RATE_LIMITED),
    ("this content isn't available, try again later", Reason.RATE_LIMITED),
    ("try again later", Reason.RATE_LIMITED),
    ("http error 429", Reason.RATE_LIMITED),
    ("too many requests", Reason.RATE_LIMITED),
    # the address itself is blocked: fresh cookies from the same IP change nothing
    ("your ip is likely being blocked", Reason.IP_FLAGGED),
    ("all player responses are invalid", Reason.IP_FLAGGED),
    # bot checks ("this helps protect our community" is YouTube's tail of the bot wall)
    ("confirm you're not a bot", Reason.BOT_DETECTION),
    ("not a bot", Reason.BOT_DETECTION),
    ("requiring a captcha", Reason.BOT_DETECTION),
    ("this helps protect our community", Reason.BOT_DETECTION),
    # wrong way to authenticate: fresh cookies change nothing
    ("login with oauth is no longer supported", Reason.OTHER),
    ("login with password is not supported", Reason.OTHER),
    # sign-in walls: age, private, members-only, login-only feeds
    ("sign in to confirm your age", Reason.AUTH_REQUIRED),
    ("age-restricted", Reason.AUTH_REQUIRED),
    ("age restricted", Reason.AUTH_REQUIRED),
    ("inappropriate for some users", Reason.AUTH_REQUIRED),
    ("private video", Reason.AUTH_REQUIRED),
    ("this video is private", Reason.AUTH_REQUIRED),
    ("members-only", Reason.AUTH_REQUIRED),
    ("join this channel to get access", Reason.AUTH_REQUIRED),
    ("available to this channel's members", Reason.AUTH_REQUIRED),
    ("login details are needed", Reason.AUTH_REQUIRED),
    ("login required", Reason.AUTH_REQUIRED),
    ("sign-in required", Reason.AUTH_REQUIRED),
    ("requires authentication", Reason.AUTH_REQUIRED),
    ("playlists that require authentication", Reason.AUTH_REQUIRED),
    ("use --cookies-from-browser or --cookies for the authentication", Reason.AUTH_REQUIRED),
    ("sign in", Reason.AUTH_REQUIRED),
    # our own hard timeout (before yt-dlp's "timed out", which is the network's)
    ("validation did not finish within", Reason.TIMEOUT),
    # HTTP 403 on the page or the media; a format probe that failed is a media 403
    ("http error 403", Reason.FORBIDDEN),
    ("403: forbidden", Reason.FORBIDDEN),
    ("403 forbidden", Reason.FORBIDDEN),
    ("request blocked", Reason.FORBIDDEN),
    ("unable to download format", Reason.FORBIDDEN),
    ("forbidden", Reason.FORBIDDEN),
    # the video, not the cookies
    ("video unavailable", Reason.UNAVAILABLE),
    ("this video is not available", Reason.UNAVAILABLE),
    ("has been removed", Reason.UNAVAILABLE),
    ("no longer available", Reason.UNAVAILABLE),
    ("does not exist", Reason.UNAVAILABLE),
    ("http error 404", Reason.UNAVAILABLE),
    ("http error 410", Reason.UNAVAILABLE),
    # the network
    ("connection refused", Reason.NETWORK_ERROR),
    ("name or service not known", Reason.NETWORK_ERROR),
    ("temporary failure in name resolution", Reason.NETWORK_ERROR),
    ("failed to resolve", Reason.NETWORK_ERROR),
    ("getaddrinfo failed", Reason.NETWORK_ERROR),
    ("nodename nor servname", Reason.NETWORK_ERROR),
    ("network is unreachable", Reason.NETWORK_ERROR),
    ("no route to host", Reason.NETWORK_ERROR),
    ("connection reset", Reason.NETWORK_ERROR),
    ("connection aborted", Reason.NETWORK_ERROR),
    ("remote end closed connection", Reason.NETWORK_ERROR),
    ("unable to connect", Reason.NETWORK_ERROR),
    ("timed out", Reason.NETWORK_ERROR),
    ("[ssl", Reason.NETWORK_ERROR),
    ("certificate verify failed", Reason.NETWORK_ERROR),
    ("transporterror", Reason.NETWORK_ERROR),
    # weak, one-word patterns of the backend's original pattern list: only when nothing better
    # matched. Its bare "cookies" is gone: it took "Skipping client ... does not support cookies"
    # and "could not find chrome cookies database" for a login wall (docs/ytdlp.md).
    (re.compile(r"\bbot\b"), Reason.BOT_DETECTION),
    (re.compile(r"\b403\b"), Reason.FORBIDDEN),
)

_QUOTES = str.maketrans({"’": "'", "‘": "'", "‛": "'", "′": "'", "“": '"', "”": '"', "„": '"'})
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lower case, straight quotes, one space: YouTube sends ’ where yt-dlp writes '."""
    return _SPACE.sub(" ", text.translate(_QUOTES)).strip().lower()


@functools.lru_cache(maxsize=1024)
def classify(text: str) -> Classification:
    """The table's verdict on `text`. Cached: every worker of a failing backend posts the same
    few texts, and a storm of them should cost one scan each."""
    norm = normalize(text)
    for pattern, reason in PATTERNS:
        found = pattern.search(norm) if isinstance(pattern, re.Pattern) else pattern in norm
        if found:
            return Classification(reason, pattern if isinstance(pattern, str) else pattern.pattern)
    return Classification(Reason.OTHER, None)


def describe(c: Classification) -> str:
    return f"{c.reason.value} ({'fixable' if c.fixable else 'not fixable'} by fresh cookies)"


# --- the same probe with and without cookies ----------------------------------------------------

# Failures that may be the address or the client rather than the cookies.
_BLOCKED = frozenset({Reason.BOT_DETECTION, Reason.FORBIDDEN, Reason.IP_FLAGGED})
_AMBIGUOUS = _BLOCKED | {Reason.PO_TOKEN_REQUIRED}


def diagnose(with_reason: Reason | None, without_reason: Reason | None) -> Reason | None:
    """What a run without cookies says about a failure with them (None: nothing to conclude).

    Works with cookies: no diagnosis. Fails the same way without them: the address or a missing PO
    token, not the cookies. Works without them only: the account. Anything else (a network error,
    a rate limit, a different failure) proves nothing either way.
    """
    if with_reason is None or with_reason not in _AMBIGUOUS | {Reason.AUTH_REQUIRED}:
        return None
    if without_reason is None:
        return Reason.ACCOUNT_RESTRICTED
    if with_reason not in _AMBIGUOUS or without_reason not in _AMBIGUOUS:
        return None
    if Reason.PO_TOKEN_REQUIRED in (with_reason, without_reason):
        return Reason.PO_TOKEN_REQUIRED
    return Reason.IP_FLAGGED


# --- text fit to leave the process ------------------------------------------------------------
#
# `scrub` is the one function every text that leaves the daemon goes through: log records (ours
# and every library's, see logs.py), API answers, job data, webhook bodies and the state file
# (`scrub_tree`). It removes values, keeps the shape: `SID=[redacted]`. `redact` is `scrub` plus
# one line, no control bytes and a length bound, for error texts that travel on.

# Secrets that can ride along in error text: header values, cookie strings, signed URL params.
_SECRETS = re.compile(
    r"(?i)\b(cookie|set-cookie|authorization|x-goog-authuser|x-youtube-identity-token)"
    r"(\s*[:=]\s*)[^|\n]+"
)
# Google's session cookies by name, bare (`SAPISID=…; LOGIN_INFO=…`, `__Secure-1PSIDTS: …`) or JSON
# (`"SID": "…"`). Names are case-sensitive, so no (?i): "inside=1" must survive.
_COOKIE_NAME = (
    r"(?:__Secure-[\w-]+|__Host-[\w-]+|[A-Z0-9]*SID(?:CC|TS)?|LOGIN_INFO|VISITOR_INFO1_LIVE"
    r"|VISITOR_PRIVACY_METADATA|YSC|PREF|SOCS|CONSENT|NID|AEC|ST-[\w-]+|GPS|1P_JAR|SMSV|OTZ"
    r"|ACCOUNT_CHOOSER)"
)
_COOKIE_PAIRS = re.compile(rf"(?<![\w-])({_COOKIE_NAME}\s*(?:=|:(?!//))\s*)[^;&\s|,'\"]+")
_COOKIE_JSON = re.compile(rf"""(["']{_COOKIE_NAME}["']\s*:\s*["'])[^"']*""")
# Cookie exports (`{"name": "SID", "value": "…"}`, EditThisCookie, yt-dlp's JSON refusal).
_VALUE_JSON = re.compile(r"""(?i)(["']value["']\s*:\s*["'])[^"']*""")
# A jar row: real tabs, or the `\t` escapes of a row yt-dlp printed with repr(). Everything after
# the first field (the domain, or a bare name) goes: which field is the value is unknowable in a
# row of the wrong length.
_JAR_ROW = re.compile(r"(\t|\\t)(?:(?! \| )[^\n])*")  # ` | ` joins the lines of a redacted text
# A row whose tabs became spaces: `… TRUE / TRUE 0 NAME value`.
_JAR_ROW_SPACED = re.compile(
    r"(?i)(\b(?:TRUE|FALSE)[ \t]+\S+[ \t]+(?:TRUE|FALSE)[ \t]+-?[\d.]+[ \t]+)(?:(?! \| )[^\n])*"
)
# yt-dlp's "skipping cookie file entry due to invalid length 3: '<the whole line>'" and "… invalid
# expires at <a field of the row>: …": only the kind of fault stays.
_SKIPPED_ENTRY = re.compile(
    r"(?i)(skipping cookie file entry(?: due to invalid (?:length \d+|expires at))?)"
    r"(?:(?! \| )[^\n])*"
)
_SAPISIDHASH = re.compile(r"(SAPISID(?:1P|3P)?HASH\s+)\S+")
_URL_SECRETS = re.compile(r"(?i)([?&](?:sig|lsig|signature|token|po_token|pot|key|auth)=)[^&\s]+")
_URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://)[^\s@]*@")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
# Every rule needs one of these characters or words: text without any (most of it) skips the
# rules. A character class, then plain `in`: a case-insensitive alternation cost 5 µs a string.
_MAYBE = re.compile(r"[=:\t\\%@]")


def _maybe_secret(text: str) -> bool:
    if _MAYBE.search(text) is not None:
        return True
    low = text.lower()
    if "true" in low or "false" in low or "skipping" in low or "hash" in low:
        return True
    return bool(_LITERALS) and any(lit in text for lit in _LITERALS)


_SURROGATE = re.compile(r"[\ud800-\udfff]")

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (_SKIPPED_ENTRY, r"\1: [redacted]"),
    (_JAR_ROW, r"\1[redacted]"),
    (_JAR_ROW_SPACED, r"\1[redacted]"),
    (_SECRETS, r"\1\2[redacted]"),
    (_COOKIE_PAIRS, r"\1[redacted]"),
    (_COOKIE_JSON, r"\1[redacted]"),
    (_VALUE_JSON, r"\1[redacted]"),
    (_SAPISIDHASH, r"\1[redacted]"),
    (_URL_SECRETS, r"\1[redacted]"),
    (_URL_USERINFO, r"\1[redacted]@"),
)

# Configured secrets, removed wherever they appear: webhook URLs (a Slack URL is a credential),
# webhook secrets, the API token. Registered at start (`register_secret`).
_LITERALS: set[str] = set()
_MIN_LITERAL = 8  # shorter would blank ordinary words


def register_secret(value: str | None) -> None:
    """Never let `value` (or, for a URL, its path and query) leave the process."""
    if not value:
        return
    candidates = {value}
    if "://" in value:
        parts = urlsplit(value)
        candidates |= {parts.path, parts.query, parts.netloc, value.split("://", 1)[1]}
        candidates |= {f"{parts.path}?{parts.query}"} if parts.query else set()
    for literal in candidates:
        if len(literal) >= _MIN_LITERAL and literal.strip("/"):
            _LITERALS.add(literal)
    _scrub_short.cache_clear()  # what was clean before may hold this secret


def clean_text(text: str) -> str:
    """Lone surrogates (which no UTF-8 encoder takes) become U+FFFD."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


def scrub(text: str) -> str:
    """`text` without any cookie value, header value, signed parameter or configured secret.

    Percent-escapes are decoded first (a few rounds, for doubly encoded text), so that
    `Cookie%3A%20SID%3D…` is scrubbed like `Cookie: SID=…`; text with nothing to remove comes
    back unchanged (paths and journal cursors keep their escapes).
    """
    if not _maybe_secret(text):
        return text
    decoded = text
    for _ in range(3):
        if "%" not in decoded:
            break
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    out = decoded
    for literal in sorted(_LITERALS, key=len, reverse=True):
        if literal in out:
            out = out.replace(literal, "[redacted]")
    for pattern, replacement in _RULES:
        out = pattern.sub(replacement, out)
    return text if out == decoded else out


SHORT_TEXT = 64  # keys, states, reasons, ids: scrubbed once and remembered (hot API answers)


@functools.lru_cache(maxsize=4096)
def _scrub_short(text: str) -> str:
    return clean_text(scrub(text))


def scrub_tree(value: Any) -> Any:
    """`scrub` (and `clean_text`) applied to every string of a JSON-shaped value, keys included.

    One look at all its text first: most answers have nothing to remove and come back as they
    are (the trigger route's answer costs a few µs, not one scrub per field)."""
    texts: list[str] = []
    _texts(value, texts)
    joined = "\n".join(texts)
    if joined.isascii() and not _maybe_secret(joined):
        return value
    return _scrub_tree(value)


def _texts(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _texts(k, out)
            _texts(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _texts(v, out)


def _scrub_tree(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_short(value) if len(value) <= SHORT_TEXT else clean_text(scrub(value))
    if isinstance(value, dict):
        return {_scrub_tree(k): _scrub_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_tree(v) for v in value]
    return value


def redact(text: str, limit: int) -> str:
    """Text fit to travel on as one field: scrubbed, one line, no control bytes, bounded."""
    # Control bytes first: some (\x0b, \x1c…) are white space to the rules and would end a value.
    text = scrub(_CONTROL.sub("", clean_text(text)))
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= limit else text[: limit - 1] + "…"
