"""Which extra yt-dlp options a probe may take (a source's `ytdlp_args`), checked at start.

`ytdlp_args` make the probe see what the backend sees: its proxy, its source address, the
extractor arguments of its PO-token provider. They are appended to every yt-dlp run of the source
(media probe, account check, the cookie-less diagnosis), before the `--` that ends the options.
The probe must stay a probe, though: it may not write files, run commands, read a config or
credentials, or touch the cookie jar it was given a private copy of.

An allow-list, not a deny-list: yt-dlp has some 300 options and adds more every release. A
deny-list would have to name every option that writes a file (`-o`, `--write-*`, `--exec`,
`--download-archive`, `--print-to-file`...), reads one (`--config-locations`, `--batch-file`,
`--load-info-json`, `--netrc`...) or changes the jar (`--cookies`, `--cookies-from-browser`), and
one forgotten, or added by a later yt-dlp, would slip through. Here an option nobody listed is
refused with its name, and allowing one is a reviewed line in `ALLOWED`. The table's value is how
many words the option takes (optparse takes them whatever they look like), so a value is never
mistaken for an option and an option never hides as a value. Long options may also be written
`--name=value`; combined short options (`-46`) and abbreviations of long ones are refused.

Messages name the option, never a value: a `--proxy` URL may hold a password.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from typing import Any

MAX_ARGS = 64
MAX_ARG_LENGTH = 4096

# option -> how many values it takes (tests/test_probe_args.py checks it against yt-dlp's parser)
ALLOWED: dict[str, int] = {
    # the network path the backend uses
    "--proxy": 1,
    "--source-address": 1,
    "-4": 0,
    "--force-ipv4": 0,
    "-6": 0,
    "--force-ipv6": 0,
    "--impersonate": 1,
    "--socket-timeout": 1,
    "--geo-verification-proxy": 1,
    "--xff": 1,
    "--legacy-server-connect": 0,
    "--no-check-certificates": 0,
    "--prefer-insecure": 0,
    # what the backend tells YouTube
    "--extractor-args": 1,  # e.g. youtube:player_client=…, a PO-token provider's base_url
    "--user-agent": 1,
    "--referer": 1,
    "--add-headers": 1,
    # how politely it asks
    "--sleep-requests": 1,
    "--retries": 1,
    "-R": 1,
    "--extractor-retries": 1,
    "--fragment-retries": 1,
    "--retry-sleep": 1,
    "--limit-rate": 1,
    "-r": 1,
    "--throttled-rate": 1,
    "--http-chunk-size": 1,
    "--concurrent-fragments": 1,
    "-N": 1,
    # where the challenge solver may come from when yt-dlp-ejs is not installed (cached in the
    # probe's cache directory)
    "--remote-components": 1,
    "--no-remote-components": 0,
}

# Why the options people try first are refused (the rest: "not on the allow-list").
_WHY = (
    (
        ("--cookies", "--no-cookies", "--cookies-from-browser"),
        "the probe hands yt-dlp a private"
        " copy of the source's jar; another cookie source would validate something else",
    ),
    (
        ("--config-locations", "--ignore-config", "--no-config"),
        "the probe runs with --no-config; a config file could carry any option",
    ),
    (
        (
            "-o",
            "--output",
            "-P",
            "--paths",
            "--print-to-file",
            "--download-archive",
            "--cache-dir",
            "--no-cache-dir",
            "--rm-cache-dir",
        ),
        "writes files",
    ),
    (("--exec", "--exec-before-download"), "runs commands"),
    (
        (
            "-a",
            "--batch-file",
            "--load-info-json",
            "--netrc",
            "--netrc-location",
            "--netrc-cmd",
            "--client-certificate",
            "--client-certificate-key",
            "--plugin-dirs",
        ),
        "reads files or runs commands",
    ),
    (
        ("-u", "--username", "-p", "--password", "--video-password", "-2", "--twofactor"),
        "credentials do not belong in the probe's command line",
    ),
    (("--js-runtimes", "--no-js-runtimes"), "set COOKIE_SUPERVISOR_JS_RUNTIME instead"),
    (
        ("-q", "--quiet", "--no-warnings", "-f", "--format", "-s", "--simulate", "--no-simulate"),
        "changes what the probe checks or hides the warnings it reads",
    ),
)
_REASONS = {option: why for options, why in _WHY for option in options}
_NAME = re.compile(r"-{1,2}[A-Za-z0-9][\w-]{0,47}")


def split_args(value: Any) -> Any:
    """An environment variable holds the arguments as one shell-quoted string; TOML may too."""
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:  # "No closing quotation"
            raise ValueError(f"cannot split into arguments: {exc}") from None
    return value


def check_args(args: Sequence[str]) -> tuple[str, ...]:
    """`args` as a tuple if every option is allowed, with its values; ValueError naming the first
    option that is not."""
    if len(args) > MAX_ARGS:
        raise ValueError(f"at most {MAX_ARGS} arguments")
    for arg in args:
        if len(arg) > MAX_ARG_LENGTH or "\0" in arg or "\n" in arg:
            raise ValueError(
                f"an argument is longer than {MAX_ARG_LENGTH} characters or holds NUL or newline"
            )
    i = 0
    while i < len(args):
        word = args[i]
        name, eq, _ = word.partition("=") if word.startswith("--") else (word, "", "")
        if word == "--" or not word.startswith("-") or word == "-":
            raise ValueError(
                "expected an option, found a value or URL without one: the probe's only URL is"
                " the validation URL"
            )
        takes = ALLOWED.get(name)
        if takes is None:
            shown = name if _NAME.fullmatch(name) else "an option"
            why = _REASONS.get(name) or (
                "writes files" if name.startswith("--write") else "not on the allow-list"
            )
            raise ValueError(f"{shown} is not allowed: {why} (see docs/ytdlp.md)")
        if eq:
            if takes != 1:
                raise ValueError(f"{name} takes no value")
            i += 1
            continue
        if takes and i + takes >= len(args):
            raise ValueError(f"{name} needs a value")
        i += 1 + takes
    return tuple(args)
