"""A source's `ytdlp_args`: allow-listed at start, appended to every probe, judged by yt-dlp's own
parser (the promise: accepted arguments change only what the allowed options set)."""

from __future__ import annotations

import json
import optparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yt_dlp.options import create_parser, parseOpts

from cookie_supervisor.classify import Reason
from cookie_supervisor.config import ConfigError, load_settings
from cookie_supervisor.probe import run_account_check, run_probe, ytdlp_args
from cookie_supervisor.probe_args import ALLOWED, check_args, split_args
from tests.support import ROOT, MediaServer

FAKE = [sys.executable, str(ROOT / "tests" / "fakes" / "fake_ytdlp.py")]
PARSER = create_parser()
EVERY_OPTION = sorted(
    {s for opt in PARSER._get_all_options() for s in (*opt._short_opts, *opt._long_opts)}
)
URL = "https://www.youtube.com/watch?v=jNQXAC9IVRw"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COOKIE_SUPERVISOR_YTDLP_ARGS", "COOKIE_SUPERVISOR_CONFIG", "YT_DLP_COOKIES_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_allow_list_is_yt_dlps_own_options_with_their_arity() -> None:
    for option, takes in ALLOWED.items():
        found = PARSER.get_option(option)
        assert found is not None, option
        assert (found.nargs or 0) == takes, option


# What the probe's own options and the jar decide, and every way to write, read or run something.
DANGEROUS = [
    *("--cookies", "--cookies-from-browser", "--no-cookies", "--config-locations", "--no-config"),
    *("-o", "-P", "--exec", "--batch-file", "--download-archive", "--load-info-json"),
    *("--print-to-file", "--cache-dir", "--rm-cache-dir", "--netrc", "--netrc-location"),
    *("--netrc-cmd", "--plugin-dirs", "--client-certificate", "--username", "--password"),
    *("--js-runtimes", "-q", "--no-warnings", "-f", "--simulate", "-v", "--check-formats"),
    *("--no-playlist", "--flat-playlist", "-I", "--enable-file-urls", "--alias", "--update"),
    *(o for o in EVERY_OPTION if o.startswith("--write")),
]


def test_no_allowed_option_sets_what_a_dangerous_one_does() -> None:
    dangerous = {PARSER.get_option(o).dest for o in DANGEROUS} - {None}
    allowed = {PARSER.get_option(o).dest for o in ALLOWED}
    assert len(dangerous) > 30 and not allowed & dangerous, allowed & dangerous


def parsed(extra: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """What yt-dlp makes of the probe's whole command line (config files ignored, as --no-config)."""
    argv = ytdlp_args(Path("/tmp/copy.txt"), URL, "download", "deno", Path("/tmp/cache"), extra)
    _, opts, urls = parseOpts(argv, ignore_config_files=True)
    return vars(opts), urls


BASELINE = parsed(())
ALLOWED_DESTS = {PARSER.get_option(o).dest for o in ALLOWED}
VALUES = st.sampled_from(["x", "1", "-", "--", "http://a", "--exec=rm", "--proxy=x", URL])
RANDOM = st.lists(st.one_of(st.sampled_from(EVERY_OPTION), VALUES), max_size=6)
PAIR = st.sampled_from(sorted(ALLOWED)).flatmap(
    lambda o: st.tuples(st.just(o), st.lists(VALUES, min_size=ALLOWED[o], max_size=ALLOWED[o]))
)
BUILT = st.lists(PAIR, max_size=4).map(lambda pairs: [w for o, vs in pairs for w in (o, *vs)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(RANDOM, BUILT))
def test_accepted_arguments_change_only_what_allowed_options_set(words: list[str]) -> None:
    try:
        extra = check_args(words)
    except ValueError:
        return
    try:
        opts, urls = parsed(extra)
    except (SystemExit, optparse.OptParseError):  # yt-dlp refuses the value: no run at all
        return
    assert urls == BASELINE[1] == [URL]  # no second URL, no URL swapped
    for dest, value in BASELINE[0].items():
        if dest not in ALLOWED_DESTS:
            assert opts[dest] == value, (dest, words)  # cookies, output, exec, config...


@pytest.mark.parametrize(
    ("words", "named"),
    [
        (["--cookies", "/tmp/other.txt"], "--cookies"),
        (["--cookies-from-browser", "firefox"], "--cookies-from-browser"),
        (["--config-locations", "/etc/yt-dlp.conf"], "--config-locations"),
        (["-o", "/tmp/%(id)s"], "-o"),
        (["--output", "x"], "--output"),
        (["--exec", "rm -rf /"], "--exec"),
        (["--batch-file", "urls.txt"], "--batch-file"),
        (["--download-archive", "a.txt"], "--download-archive"),
        (["--write-info-json"], "--write-info-json"),
        (["--write-subs"], "--write-subs"),
        (["--load-info-json", "x.json"], "--load-info-json"),
        (["--netrc"], "--netrc"),
        (["--js-runtimes", "node"], "--js-runtimes"),
        (["--no-warnings"], "--no-warnings"),
        (["--proxy", "http://a", "--print-to-file", "x", "f"], "--print-to-file"),
        (["--cook", "x"], "--cook"),  # yt-dlp would take the abbreviation for --cookies
        (["-46"], "-46"),
    ],
)
def test_dangerous_options_are_refused_by_name(words: list[str], named: str) -> None:
    with pytest.raises(ValueError, match=f"^{named} is not allowed: "):
        check_args(words)


def test_values_urls_and_malformed_words_are_refused() -> None:
    for words, message in [
        (["http://elsewhere/video"], "expected an option"),
        (["--proxy", "http://a", "--", URL], "expected an option"),
        (["--proxy"], "--proxy needs a value"),
        (["--force-ipv4=yes"], "--force-ipv4 takes no value"),
        (["--proxy", "a\0b"], "NUL"),
        (["--retries"] * 65, "at most 64"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_args(words)
    # a value may look like an option: yt-dlp takes it as the value, and so does the check
    assert check_args(["--user-agent", "--exec"]) == ("--user-agent", "--exec")
    assert check_args(["--proxy=socks5://127.0.0.1:9050", "-4"])


def test_a_refusal_never_repeats_a_value() -> None:
    secret = "http://user:hunter2@proxy"
    for words in ([f"--proxy{secret}"], [secret], ["--bogus", secret]):
        with pytest.raises(ValueError) as err:
            check_args(words)
        assert "hunter2" not in str(err.value)


def test_settings_take_toml_arrays_and_shell_quoted_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jar = tmp_path / "c.txt"
    cfg = tmp_path / "s.toml"
    cfg.write_text(
        f'[[sources]]\nname = "main"\ncookies_file = "{jar}"\n'
        'ytdlp_args = ["--proxy", "socks5://127.0.0.1:9050", "--extractor-args",'
        ' "youtube:player_client=web;po_token=web.gvs+XXX"]\n'
    )
    [main] = load_settings(cfg).all_sources()
    assert main.ytdlp_args == (
        "--proxy",
        "socks5://127.0.0.1:9050",
        "--extractor-args",
        "youtube:player_client=web;po_token=web.gvs+XXX",
    )
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(jar))
    monkeypatch.setenv(
        "COOKIE_SUPERVISOR_YTDLP_ARGS",
        "--source-address 127.0.0.2 --extractor-args 'youtube:player_client=web,tv'",
    )
    default = load_settings().all_sources()[0]
    assert default.name == "default"
    assert default.ytdlp_args == (
        "--source-address",
        "127.0.0.2",
        "--extractor-args",
        "youtube:player_client=web,tv",  # the comma survives: this is not a comma list
    )
    assert split_args(["a"]) == ["a"]
    monkeypatch.setenv("COOKIE_SUPERVISOR_YTDLP_ARGS", "--exec 'echo hunter2'")
    with pytest.raises(ConfigError, match=r"^COOKIE_SUPERVISOR_YTDLP_ARGS: --exec is not allowed"):
        load_settings()


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        (
            {"COOKIE_SUPERVISOR_YTDLP_ARGS": "--cookies /tmp/x"},
            None,
            "COOKIE_SUPERVISOR_YTDLP_ARGS: --cookies is not allowed",
        ),
        ({}, '["--config-locations", "/etc/yt-dlp.conf"]', "sources[main].ytdlp_args: "),
        (
            {"COOKIE_SUPERVISOR_YTDLP_ARGS": "--proxy 'unclosed"},
            None,
            "COOKIE_SUPERVISOR_YTDLP_ARGS: cannot split into arguments",
        ),
    ],
)
def test_the_daemon_refuses_to_start_with_exit_2(
    tmp_path: Path, env: dict[str, str], toml: str | None, message: str
) -> None:
    base = {
        "PATH": "/usr/bin:/bin",
        "REDIS_URL": "redis://127.0.0.1:1",
        "COOKIE_SUPERVISOR_LISTEN": "127.0.0.1:1",  # never reached
    }
    args = [sys.executable, "-m", "cookie_supervisor", "run"]
    if toml is None:
        base["YT_DLP_COOKIES_FILE"] = str(tmp_path / "c.txt")
    else:
        cfg = tmp_path / "s.toml"
        cfg.write_text(
            f'[[sources]]\nname = "main"\ncookies_file = "{tmp_path / "c.txt"}"\n'
            f"ytdlp_args = {toml}\n"
        )
        args += ["--config", str(cfg)]
    proc = subprocess.run(args, env={**base, **env}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"cookie-supervisor: configuration error: {message}"), line


# --- appended to every probe ---------------------------------------------------------------------


async def test_every_kind_of_probe_gets_the_sources_arguments(
    jar: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "record.json"
    monkeypatch.setenv("FAKE_RECORD", str(record))
    extra = ("--proxy", "socks5://127.0.0.1:9", "--extractor-args", "youtube:player_client=web")
    runs = {
        "media": run_probe(jar, URL, command=[*FAKE, "ok"], js_runtime="deno", extra=extra),
        "bare": run_probe(
            jar, URL, command=[*FAKE, "ok"], js_runtime="deno", cookies=False, extra=extra
        ),
        "account": run_account_check(jar, command=[*FAKE, "ll_ok"], js_runtime="deno", extra=extra),
    }
    for kind, run in runs.items():
        assert (await run).ok, kind
        args = json.loads(record.read_text())["args"]
        tail = args[args.index("--") - len(extra) :]
        assert tail[: len(extra)] == list(extra) and tail[-2] == "--", (kind, args)


async def test_real_ytdlp_applies_them(media: MediaServer, jar: Path) -> None:
    """--add-headers reaches the local server: the arguments are yt-dlp's, not decoration."""
    extra = check_args(["--add-headers", "X-Probe-Marker:backend-like", "--socket-timeout", "20"])
    r = await run_probe(jar, media.url(), extra=extra)
    assert r.ok and r.reason is None, r
    marked = [h for p, h in media.requests if h.get("X-Probe-Marker") == "backend-like"]
    assert marked, media.requests
    refused = await run_probe(jar, media.url("/forbidden.mp4"), extra=extra)
    assert refused.reason is Reason.FORBIDDEN
