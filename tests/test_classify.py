"""The failure table: every message of docs/ytdlp.md and of the backend's original pattern list."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cookie_supervisor.classify import (
    DEFAULT_TRIGGERS,
    Reason,
    classify,
    diagnose,
    normalize,
    redact,
)

HINT = (
    "Use --cookies-from-browser or --cookies for the authentication. See  "
    "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually "
    "pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies"
    "  for tips on effectively exporting YouTube cookies"
)
YT = "ERROR: [youtube] jNQXAC9IVRw: "
RATE_TAIL = (
    " The current session has been rate-limited by YouTube for up to an hour. It is recommended to "
    "use `-t sleep` to add a delay between video requests to avoid exceeding the rate limit. For more "
    "information, refer to  https://github.com/yt-dlp/yt-dlp/wiki/Extractors"
    "#this-content-isnt-available-try-again-later"
)

# (text exactly as yt-dlp 2026.10.26 prints it, documented reason)
YTDLP = [
    (YT + "Sign in to confirm you’re not a bot. " + HINT, Reason.BOT_DETECTION),
    (
        YT + "Sign in to confirm your age. This video may be inappropriate for some users. " + HINT,
        Reason.AUTH_REQUIRED,
    ),
    (
        YT + "Private video. Sign in if you've been granted access to this video. " + HINT,
        Reason.AUTH_REQUIRED,
    ),
    (
        YT + "Private video. Sign in if you’ve been granted access to this video. " + HINT,
        Reason.AUTH_REQUIRED,
    ),
    (
        YT + "Join this channel to get access to members-only content like this video, and other "
        "exclusive perks.",
        Reason.AUTH_REQUIRED,
    ),
    (
        YT
        + "This video is available to this channel's members on level: Gold (or any higher level). "
        "Join this channel to get access to members-only content and other exclusive perks.",
        Reason.AUTH_REQUIRED,
    ),
    (
        YT + "Video unavailable. This content isn't available, try again later." + RATE_TAIL,
        Reason.RATE_LIMITED,
    ),
    (
        YT
        + "Video unavailable. This content isn't available, try again later."
        + RATE_TAIL.replace("The current session", "Your account"),
        Reason.RATE_LIMITED,
    ),
    (YT + "Video unavailable. This content isn’t available, try again later.", Reason.RATE_LIMITED),
    (
        YT + "Video unavailable. YouTube is requiring a captcha challenge before playback",
        Reason.BOT_DETECTION,
    ),
    (
        YT + "Video unavailable. This video is no longer available because the YouTube account "
        "associated with this video has been terminated.",
        Reason.UNAVAILABLE,
    ),
    (
        "WARNING: [youtube] The provided YouTube account cookies are no longer valid. They have likely "
        "been rotated in the browser as a security measure. For tips on how to effectively export "
        "YouTube cookies, refer to  https://github.com/yt-dlp/yt-dlp/wiki/Extractors"
        "#exporting-youtube-cookies .",
        Reason.COOKIES_ROTATED,
    ),
    (
        "[youtube] jNQXAC9IVRw: This video is age-restricted; some formats may be missing without "
        "authentication. " + HINT,
        Reason.AUTH_REQUIRED,
    ),
    (
        "ERROR: [youtube:favorites] Login details are needed to download this content. " + HINT,
        Reason.AUTH_REQUIRED,
    ),
    (YT + "Login with OAuth is no longer supported. " + HINT, Reason.OTHER),
    ("WARNING: [youtube] Login with password is not supported for YouTube. " + HINT, Reason.OTHER),
    (
        "ERROR: [youtube] jNQXAC9IVRw: All player responses are invalid. Your IP is likely being "
        "blocked by Youtube",
        Reason.IP_FLAGGED,
    ),
    (
        "ERROR: [youtube:tab] Playlists that require authentication may not extract correctly without "
        "a successful webpage download. If you are not downloading private content, or your cookies "
        'are only for the first account and channel, pass "--extractor-args '
        'youtubetab:skip=authcheck" to skip this check',
        Reason.AUTH_REQUIRED,
    ),
    ("ERROR: unable to download video data: HTTP Error 403: Forbidden", Reason.FORBIDDEN),
    (
        "[download] Got error: HTTP Error 403: Forbidden. Retrying fragment 1 (1/10)...\n"
        "ERROR: The downloaded file is empty",
        Reason.FORBIDDEN,
    ),
    (
        "WARNING: Unable to download format mp4. Skipping...\nERROR: [generic] f403: Requested "
        "format is not available. Use --list-formats for a list of available formats",
        Reason.FORBIDDEN,
    ),
    (
        YT + "Unable to download webpage: HTTP Error 403: Forbidden (caused by <HTTPError 403: "
        "Forbidden>)",
        Reason.FORBIDDEN,
    ),
    (
        YT + "Unable to download API page: HTTP Error 429: Too Many Requests (caused by "
        "<HTTPError 429: Too Many Requests>)",
        Reason.RATE_LIMITED,
    ),
    (
        "ERROR: [generic] missing: Unable to download webpage: HTTP Error 404: Not Found (caused by "
        "<HTTPError 404: Not Found>)",
        Reason.UNAVAILABLE,
    ),
    (
        "ERROR: [generic] video: Unable to download webpage: [Errno 111] Connection refused (caused by "
        "TransportError('[Errno 111] Connection refused'))",
        Reason.NETWORK_ERROR,
    ),
    (
        "ERROR: [download] Got error: [Errno 111] Connection refused. Giving up after 10 retries",
        Reason.NETWORK_ERROR,
    ),
    (
        "ERROR: [youtube] jNQXAC9IVRw: Unable to download webpage: <urlopen error [Errno -3] "
        "Temporary failure in name resolution>",
        Reason.NETWORK_ERROR,
    ),
    (
        "ERROR: 'cookies.txt' does not look like a Netscape format cookies file",
        Reason.CORRUPT_COOKIES,
    ),
    (
        "ERROR: Cookies file must be Netscape formatted, not JSON. See  https://github.com/yt-dlp/"
        "yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp",
        Reason.CORRUPT_COOKIES,
    ),
    (
        "ERROR: invalid Netscape format cookies file 'c.txt': '.youtube.com\\tFALSE'",
        Reason.CORRUPT_COOKIES,
    ),
    (
        "WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by "
        "default; to use another runtime add  --js-runtimes RUNTIME[:PATH]",
        Reason.JS_CHALLENGE_FAILED,
    ),
    ("validation did not finish within 120s; killed", Reason.TIMEOUT),
    # PO-token notices (issue 10.5): they mention "HTTP Error 403" but are not a 403
    (
        "WARNING: [youtube] jNQXAC9IVRw: android client https formats require a GVS PO Token which "
        "was not provided. They will be skipped as they may yield HTTP Error 403. You can manually "
        'pass a GVS PO Token for this client with --extractor-args "youtube:po_token=android.gvs+XXX"'
        ". For more information, refer to  https://github.com/yt-dlp/yt-dlp/wiki/PO-Token-Guide",
        Reason.PO_TOKEN_REQUIRED,
    ),
    (
        "[debug] [youtube] jNQXAC9IVRw: web client https formats require a GVS PO Token which was "
        "not provided. They will be skipped as they may yield HTTP Error 403.",
        Reason.PO_TOKEN_REQUIRED,
    ),
    (
        "WARNING: [youtube] jNQXAC9IVRw: Some android client subtitles require a PO Token which was "
        "not provided. They will be discarded since they are not downloadable as-is.",
        Reason.PO_TOKEN_REQUIRED,
    ),
    (
        "WARNING: [youtube] Unable to fetch GVS PO Token for web client: Missing required Visitor "
        'Data. You may need to pass Visitor Data with --extractor-args "youtube:visitor_data=XXX"',
        Reason.PO_TOKEN_REQUIRED,
    ),
    # "cookies" in texts that are not about a login wall (the catch-all is gone)
    (
        'WARNING: [youtube] Skipping client "android" since it does not support cookies',
        Reason.OTHER,
    ),
    (
        'ERROR: could not find chrome cookies database in "/home/u/.config/google-chrome"',
        Reason.OTHER,
    ),
]

# The backend's original pattern list (its README's), each with the reason it now maps to.
ORIGINAL = [
    ("Sign in to confirm you're not a bot", Reason.BOT_DETECTION),
    ("sign in to confirm", Reason.AUTH_REQUIRED),
    ("bot", Reason.BOT_DETECTION),
    ("HTTP Error 403", Reason.FORBIDDEN),
    ("403", Reason.FORBIDDEN),
    ("Forbidden", Reason.FORBIDDEN),
    ("login required", Reason.AUTH_REQUIRED),
    ("sign-in required", Reason.AUTH_REQUIRED),
    ("Sign-in required", Reason.AUTH_REQUIRED),
    ("This helps protect our community. Learn more", Reason.BOT_DETECTION),
    ("requires authentication", Reason.AUTH_REQUIRED),
    ("age-restricted", Reason.AUTH_REQUIRED),
    ("members-only", Reason.AUTH_REQUIRED),
    ("private video", Reason.AUTH_REQUIRED),
    ("cookies have expired", Reason.EXPIRED),
    ("cookie file not found", Reason.MISSING_COOKIES),
]


@pytest.mark.parametrize(("text", "reason"), YTDLP + ORIGINAL)
def test_documented_messages(text: str, reason: Reason) -> None:
    assert classify(text).reason is reason


@pytest.mark.parametrize(("text", "reason"), YTDLP + ORIGINAL)
def test_case_quotes_and_white_space_do_not_matter(text: str, reason: Reason) -> None:
    mangled = "  " + text.upper().replace("'", "’").replace(" ", " \t\n ") + "  "
    assert classify(mangled).reason is reason


@pytest.mark.parametrize(
    ("reason", "fixable"),
    [
        (Reason.BOT_DETECTION, True),
        (Reason.AUTH_REQUIRED, True),
        (Reason.COOKIES_ROTATED, True),
        (Reason.FORBIDDEN, True),
        (Reason.MISSING_COOKIES, True),
        (Reason.EXPIRED, True),
        (Reason.NETWORK_ERROR, False),
        (Reason.UNAVAILABLE, False),
        (Reason.RATE_LIMITED, False),
        (Reason.TIMEOUT, False),
        (Reason.NO_JS_RUNTIME, False),
        (Reason.JS_CHALLENGE_FAILED, False),
        (Reason.OTHER, False),
        (Reason.UNREADABLE, False),
        (Reason.NOT_A_FILE, False),
        (Reason.IP_FLAGGED, False),
        (Reason.PO_TOKEN_REQUIRED, False),
        (Reason.ACCOUNT_RESTRICTED, False),
    ],
)
def test_fixable_flag(reason: Reason, fixable: bool) -> None:
    assert reason.fixable is fixable


def test_no_reason_fresh_cookies_cannot_fix_is_a_default_trigger() -> None:
    assert all(r.fixable for r in DEFAULT_TRIGGERS)
    assert {Reason.RATE_LIMITED, Reason.IP_FLAGGED, Reason.PO_TOKEN_REQUIRED}.isdisjoint(
        DEFAULT_TRIGGERS
    )


def test_the_catch_all_cookie_word_is_gone() -> None:
    """A bare "cookies" proves nothing; a real login wall still says so in its own words."""
    assert classify("cookies").reason is Reason.OTHER
    assert classify("Could not copy Chrome cookie database").reason is Reason.OTHER
    assert classify(YT + "Sign in to confirm your age. " + HINT).reason is Reason.AUTH_REQUIRED


def test_po_token_notice_is_not_a_403() -> None:
    c = classify("web client https formats require a GVS PO Token ... may yield HTTP Error 403")
    assert c.reason is Reason.PO_TOKEN_REQUIRED and not c.fixable


B, F, IP, P, A = (
    Reason.BOT_DETECTION,
    Reason.FORBIDDEN,
    Reason.IP_FLAGGED,
    Reason.PO_TOKEN_REQUIRED,
    Reason.AUTH_REQUIRED,
)


@pytest.mark.parametrize(
    ("with_cookies", "without_cookies", "diagnosis"),
    [
        (None, None, None),  # works with cookies: nothing to diagnose
        (None, B, None),
        (B, B, IP),  # the same bot wall as a guest: the address
        (F, F, IP),  # a media 403 either way, no PO-token notice: the address
        (B, F, IP),
        (IP, IP, IP),
        (F, P, P),  # a PO-token notice on either side names the cause
        (P, P, P),
        (P, B, P),
        (B, None, Reason.ACCOUNT_RESTRICTED),  # a guest gets through, the account does not
        (F, None, Reason.ACCOUNT_RESTRICTED),
        (A, None, Reason.ACCOUNT_RESTRICTED),
        (A, A, None),  # an age gate both ways: still the cookies' business
        (B, Reason.NETWORK_ERROR, None),  # the second run proves nothing
        (B, Reason.RATE_LIMITED, None),
        (B, Reason.TIMEOUT, None),
        (Reason.COOKIES_ROTATED, None, None),  # the cookies, certainly
        (Reason.NETWORK_ERROR, None, None),
        (Reason.RATE_LIMITED, Reason.RATE_LIMITED, None),
    ],
)
def test_diagnose(
    with_cookies: Reason | None, without_cookies: Reason | None, diagnosis: Reason | None
) -> None:
    assert diagnose(with_cookies, without_cookies) is diagnosis


def test_words_inside_words_are_not_matches() -> None:
    assert classify("robots and bottles").reason is Reason.OTHER
    assert classify("port 4030 open").reason is Reason.OTHER
    assert classify("").reason is Reason.OTHER


def test_normalize() -> None:
    assert (
        normalize("  Sign In\tto confirm you’re\n\nnot a BOT  ")
        == "sign in to confirm you're not a bot"
    )


@given(st.text())
def test_classify_never_raises(text: str) -> None:
    assert isinstance(classify(text).reason, Reason)


def test_redact_strips_header_values_and_signed_params() -> None:
    text = (
        "Cookie: SID=SeCrEt; LOGIN_INFO=SeCrEt\nAuthorization: SAPISIDHASH 1_SeCrEt\n"
        "https://rr1---sn.googlevideo.com/videoplayback?expire=1&sig=SeCrEt&lsig=SeCrEt&x=1\x07"
    )
    out = redact(text, 500)
    assert "SeCrEt" not in out and "\x07" not in out and "\n" not in out
    assert "expire=1" in out and "x=1" in out
    assert len(redact("x" * 1000, 100)) == 100


@pytest.mark.parametrize(
    "text",
    [
        "Cookie: SID=SeCrEt1; HSID=SeCrEt2",
        "error: SAPISID=SeCrEt1; LOGIN_INFO=SeCrEt2; __Secure-3PSID=SeCrEt3 while fetching",
        "sent SID=SeCrEt1;HSID=SeCrEt2,SSID=SeCrEt3 APISID=SeCrEt4 SIDCC=SeCrEt5 PREF=SeCrEt6",
        "Cookie%3A%20SID%3DSeCrEt1%3B%20LOGIN_INFO%3DSeCrEt2",  # URL-encoded
        "q=SAPISID%253DSeCrEt1%253B%2520LOGIN_INFO%253DSeCrEt2",  # twice
        "form: SAPISID%3DSeCrEt1%3B+LOGIN_INFO%3DSeCrEt2",
        '{"cookies": {"SID": "SeCrEt1", "__Secure-1PSIDTS": "SeCrEt2"}}',
        "x-goog-authuser: 0 SAPISIDHASH 1700000000_SeCrEt1 SAPISID3PHASH 1700000000_SeCrEt2",
        "cookie=SID=SeCrEt1",
    ],
)
def test_redact_cookie_looking_text(text: str) -> None:
    out = redact(text, 500)
    assert "SeCrEt" not in out and "[redacted]" in out, out


def test_redact_leaves_ordinary_text() -> None:
    for text in (
        "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. " + HINT,
        "inside=1 offset=4 consider=yes",
        "yt-dlp -o '%(id)s.%(ext)s' failed: HTTP Error 403: Forbidden",
    ):
        assert redact(text, 1000) == text


def test_cli_classify() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", "classify", "HTTP Error 403: Forbidden"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and out.stdout.strip() == "forbidden (fixable by fresh cookies)"
