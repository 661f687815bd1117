"""Redaction is one function (`classify.scrub`) and no cookie value survives it, whatever the shape.

The shapes are the ones yt-dlp, Netscape jars, browsers' cookie exports and HTTP headers show
values in; each is also tried percent-encoded and inside surrounding text. `redact` (one line,
bounded) and `scrub_tree` (API answers, job data, webhook bodies, state file) build on `scrub`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cookie_supervisor.classify import redact, register_secret, scrub, scrub_tree

# Google's and YouTube's cookies: these are redacted even in free text (`NAME=value`).
KNOWN = [
    "SID",
    "HSID",
    "SSID",
    "APISID",
    "SAPISID",
    "LSID",
    "SIDCC",
    "LOGIN_INFO",
    "VISITOR_INFO1_LIVE",
    "VISITOR_PRIVACY_METADATA",
    "YSC",
    "PREF",
    "NID",
    "__Secure-1PSID",
    "__Secure-3PSID",
    "__Secure-1PSIDTS",
    "__Secure-3PSIDTS",
    "__Secure-1PSIDCC",
    "__Secure-3PAPISID",
    "__Secure-ROLLOUT_TOKEN",
    "__Host-GAPS",
    "ST-1b2c3d",
]
known_names = st.sampled_from(KNOWN)
# Any name: in a header, a jar row or an export the shape says it is a cookie.
any_names = st.one_of(known_names, st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True))
# Real values: base64(url) with padding, dots and dashes, as Google's are; at least 8 characters.
values = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./+=",
    min_size=8,
    max_size=48,
)
domains = st.sampled_from([".youtube.com", "youtube.com", ".google.com", "#HttpOnly_.youtube.com"])
Shape = Callable[[str, str, str], str]


def row(domain: str, name: str, value: str) -> str:
    return f"{domain}\tTRUE\t/\tTRUE\t1799999999\t{name}\t{value}"


SHAPES: dict[str, Shape] = {
    "pair": lambda d, n, v: f"{n}={v}",
    "pairs; in a header-like list": lambda d, n, v: f"PREF=f6=40000000; {n}={v}; YSC=abc",
    "pair & in a query": lambda d, n, v: f"https://www.youtube.com/x?a=1&{n}={v}&b=2",
    "colon": lambda d, n, v: f"{n}: {v}",
    "colon no space": lambda d, n, v: f"{n}:{v}",
    "jar row": lambda d, n, v: row(d, n, v),
    "jar row, wrong length": lambda d, n, v: f"{d}\tTRUE\t/\t{n}\t{v}",
    "name TAB value": lambda d, n, v: f"{n}\t{v}",
    "jar row, repr": lambda d, n, v: repr(row(d, n, v) + "\n"),
    "ytdlp skipped entry": lambda d, n, v: (
        "WARNING: skipping cookie file entry due to invalid length 6: "
        + repr(f"{d}\tTRUE\t/\tTRUE\t{n}\t{v}\n")
    ),
    "ytdlp skipped expires": lambda d, n, v: (
        f"WARNING: skipping cookie file entry due to invalid expires at x{v}: "
        + repr(row(d, n, v) + "\n")
    ),
    "jar row, spaces": lambda d, n, v: f"{d} TRUE / TRUE 1799999999 {n} {v}",
    "quoted pair": lambda d, n, v: f"'{n}={v}'",
    "double-quoted pair": lambda d, n, v: f'"{n}={v}"',
    "json object": lambda d, n, v: json.dumps({n: v}),
    "json export": lambda d, n, v: json.dumps([{"domain": d, "name": n, "value": v}]),
    "json export, single quotes": lambda d, n, v: str({"name": n, "value": v}),
    "Cookie header": lambda d, n, v: f"Cookie: PREF=hl=en; {n}={v}; YSC=x1",
    "cookie header lower": lambda d, n, v: f"cookie:{n}={v}",
    "Set-Cookie header": lambda d, n, v: f"Set-Cookie: {n}={v}; Path=/; Secure; HttpOnly",
    "Set-Cookie, quoted value": lambda d, n, v: f'Set-Cookie: {n}="{v}"; Domain={d}',
    "Authorization": lambda d, n, v: f"Authorization: SAPISIDHASH 1700000000_{v}",
    "signed URL": lambda d, n, v: f"https://r1.googlevideo.com/videoplayback?sig={v}&x=1",
    "URL with credentials": lambda d, n, v: f"https://{n}:{v}@hooks.example.org/x",
}
# Shapes where only the name tells a cookie from ordinary words: known names only.
FREE_TEXT = {
    "pair",
    "pairs; in a header-like list",
    "pair & in a query",
    "colon",
    "colon no space",
    "quoted pair",
    "double-quoted pair",
    "json object",
}
shape_names = st.sampled_from(sorted(SHAPES))
wrappers = st.sampled_from(
    [
        "{}",
        "ERROR: [youtube] jNQXAC9IVRw: {} while downloading",
        "line one\n{}\nline three",
        "a | {} | b",
        "{{'error': {!r}}}",
    ]
)


@settings(max_examples=400)
@given(shape_names, domains, known_names, any_names, values, wrappers, st.booleans())
def test_no_cookie_value_survives(
    shape: str, domain: str, known: str, name: str, value: str, wrapper: str, encode: bool
) -> None:
    cookie = known if shape in FREE_TEXT else name
    text = wrapper.format(SHAPES[shape](domain, cookie, value))
    placeholder = wrapper.format(SHAPES[shape](domain, cookie, "\x00"))
    assume(value not in placeholder)  # the value must not be a part of the fixed text
    if encode:
        text = quote(text)
    for out in (scrub(text), redact(text, 10_000), json.dumps(scrub_tree({"e": [text]}))):
        assert value not in out, (shape, text, out)
        assert "[redacted]" in out, (shape, text, out)


@given(st.lists(st.tuples(shape_names, any_names, values), min_size=2, max_size=5))
def test_several_values_in_one_text(cookies: list[tuple[str, str, str]]) -> None:
    def text(fill: Callable[[str], str]) -> str:
        return "\n".join(
            SHAPES[s](".youtube.com", "SID" if s in FREE_TEXT else n, fill(v))
            for s, n, v in cookies
        )

    placeholder = text(lambda v: "\x00")
    assume(all(value not in placeholder for _, _, value in cookies))
    out = scrub(text(lambda v: v))
    for shape, _, value in cookies:
        assert value not in out, (shape, out)


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot.",
        "inside=1 offset=4 consider=yes",
        "cookie file changed path=/srv/ytdlp/cookies%20x.txt",
        "s=0123abcd;i=1f;b=ffee;m=12;t=5ea;x=99",  # a journal cursor
        "HTTP Error 403: Forbidden",
    ):
        assert scrub(text) == text


def test_configured_secrets_never_leave() -> None:
    register_secret("https://hooks.slack.com/services/T000/B000/XyZsEcReTtOkEn123")
    register_secret("https://ops.example.org/hook?token=qwertyuiop123")
    text = "POST https://hooks.slack.com/services/T000/B000/XyZsEcReTtOkEn123 failed"
    assert "XyZsEcReTtOkEn123" not in scrub(text)
    assert "/services/T000/B000/XyZsEcReTtOkEn123" not in scrub(
        "path /services/T000/B000/XyZsEcReTtOkEn123"
    )
    assert "qwertyuiop123" not in scrub("host ops.example.org/hook?token=qwertyuiop123")


def test_the_jar_line_ytdlp_prints_for_a_malformed_entry() -> None:
    # yt-dlp's exact text (cookies.py: write_string(f"WARNING: skipping ... {e}: {line!r}\n"))
    line = ".youtube.com\tTRUE\t/\tTRUE\tLOGIN_INFO\tAFmmF2swRQIhAOsecret\n"
    text = f"WARNING: skipping cookie file entry due to invalid length 6: {line!r}"
    out = redact(text, 500)
    assert "AFmmF2swRQIhAOsecret" not in out
    assert out.startswith("WARNING: skipping cookie file entry due to invalid length 6")


def test_lone_surrogates_become_replacement_characters() -> None:
    assert json.dumps(scrub_tree({"e": "a\ud800b"}), ensure_ascii=False).encode()
    assert redact("a\udfffb", 10) == "a\ufffdb"


def test_a_short_text_remembered_clean_is_scrubbed_again_once_a_secret_is_registered() -> None:
    """Short strings are remembered scrubbed (hot API answers); a secret registered later must
    still never come back out of that memory."""
    secret = "zq-late-registered-token-77"
    assert scrub_tree({"note": secret}) == {"note": secret}  # not a secret yet
    register_secret(secret)
    assert secret not in str(scrub_tree({"note": secret}))
    assert secret not in str(scrub_tree({secret: 1}))  # keys too
