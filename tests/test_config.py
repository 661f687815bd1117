"""Configuration: defaults, env vs TOML, and one-line errors that name the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cookie_supervisor.classify import DEFAULT_TRIGGERS, Reason
from cookie_supervisor.config import (
    DEFAULT_VALIDATION_URL,
    ConfigError,
    load_settings,
    parse_duration,
    preflight,
    variable_names,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("COOKIE_SUPERVISOR_") or name in ("REDIS_URL", "YT_DLP_COOKIES_FILE"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90),
        (90, 90),
        ("90s", 90),
        ("30m", 1800),
        ("1h30m", 5400),
        ("7d", 604800),
        ("2w", 1209600),
        ("500ms", 0.5),
        ("1.5h", 5400),
        ("0", 0),
        (" 10 m ", 600),
    ],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["abc", "7x", "1h30", "-5", "m", "", True, None])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_env_only_gives_one_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/cookies.txt")
    s = load_settings()
    assert s.redis_url == "redis://localhost:6379" and s.listen == "127.0.0.1:9479"
    assert s.queue == "cookie-refresh" and s.job_name == "__default__" and s.job_attempts == 3
    [src] = s.all_sources()
    assert src.name == "default" and src.cookies_file == Path("/srv/cookies.txt")
    assert src.validate_every == 1800 and src.missing_grace == 60 and src.rotate_after == 7 * 86400
    assert src.trigger_on == DEFAULT_TRIGGERS


def test_env_settings_for_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/cookies.txt")
    monkeypatch.setenv(
        "COOKIE_SUPERVISOR_VALIDATION_URLS", "http://127.0.0.1:1/a, http://127.0.0.1:1/b"
    )
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATE_EVERY", "0")
    [src] = load_settings().all_sources()
    assert src.validation_urls == ["http://127.0.0.1:1/a", "http://127.0.0.1:1/b"]
    assert src.validate_every == 0


def test_toml_sources_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'queue = "from-file"\nlog_format = "json"\n'
        '[[sources]]\nname = "main"\ncookies_file = "/a.txt"\nvalidate_every = "5m"\n'
        'trigger_on = ["bot_detection", "forbidden"]\n'
        '[[sources]]\nname = "backup"\ncookies_file = "/b.txt"\nprobe_mode = "metadata"\n'
    )
    monkeypatch.setenv("COOKIE_SUPERVISOR_QUEUE", "from-env")
    s = load_settings(cfg)
    assert s.queue == "from-env" and s.log_format == "json"
    main, backup = s.all_sources()
    assert (main.name, main.validate_every) == ("main", 300)
    assert main.trigger_on == {Reason.BOT_DETECTION, Reason.FORBIDDEN}
    assert backup.probe_mode == "metadata"
    monkeypatch.setenv("COOKIE_SUPERVISOR_CONFIG", str(cfg))
    assert [x.name for x in load_settings().all_sources()] == ["main", "backup"]


@pytest.mark.parametrize(
    ("env", "toml", "message"),
    [
        ({}, "", "YT_DLP_COOKIES_FILE: no cookie file configured"),
        (
            {"COOKIE_SUPERVISOR_LISTEN": "nohost"},
            "",
            "COOKIE_SUPERVISOR_LISTEN: expected host:port",
        ),
        (
            {"COOKIE_SUPERVISOR_LISTEN": "0.0.0.0:9479"},
            "",
            "COOKIE_SUPERVISOR_LISTEN: a non-loopback address needs COOKIE_SUPERVISOR_API_TOKEN",
        ),
        ({"REDIS_URL": "http://x"}, "", "REDIS_URL: must start with redis://"),
        (
            {"COOKIE_SUPERVISOR_LOG_FORMAT": "xml"},
            "",
            "COOKIE_SUPERVISOR_LOG_FORMAT: Input should be",
        ),
        (
            {"COOKIE_SUPERVISOR_VALIDATE_EVERY": "soon"},
            "",
            "COOKIE_SUPERVISOR_VALIDATE_EVERY: invalid duration 'soon'",
        ),
        (
            {"COOKIE_SUPERVISOR_RATE_LIMIT": "-1"},
            "",
            "COOKIE_SUPERVISOR_RATE_LIMIT: Input should be",
        ),
        (
            {},
            '[[sources]]\nname = "a"\ncookies_file = "/a"\nrotate_after = "7x"\n',
            "sources[a].rotate_after: invalid duration '7x'",
        ),
        (
            {},
            '[[sources]]\nname = "a"\ncookies_file = "/a"\ntrigger_on = ["nope"]\n',
            "sources[a].trigger_on.0: Input should be",
        ),
        ({}, '[[sources]]\nname = "a b"\ncookies_file = "/a"\n', "sources[a b].name: must be"),
        (
            {},
            '[[sources]]\nname = "a"\ncookies_file = "/a"\nvalidation_urls = ["ftp://x"]\n',
            "sources[a].validation_urls: not an http(s) URL",
        ),
        (
            {},
            '[[sources]]\nname = "a"\ncookies_file = "/a"\n'
            '[[sources]]\nname = "a"\ncookies_file = "/b"\n',
            "sources: names must be unique",
        ),
        (
            {},
            'queue = "x"\nbogus = 1\n[[sources]]\nname = "a"\ncookies_file = "/a"\n',
            "bogus (config file): unknown setting",
        ),
        ({}, "not = [toml", "invalid TOML"),
    ],
)
def test_errors_name_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], toml: str, message: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    if env:  # every env case but the first needs a cookie file to get as far as its own error
        monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    cfg = None
    if toml:
        cfg = tmp_path / "c.toml"
        cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_config_error_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "YT_DLP_COOKIES_FILE": str(tmp_path / "c.txt"),
        "COOKIE_SUPERVISOR_VALIDATE_EVERY": "often",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "COOKIE_SUPERVISOR_VALIDATE_EVERY" in proc.stderr and "Traceback" not in proc.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", "run", "--config", str(tmp_path / "nope.toml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (
        missing.returncode == 2
        and "nope.toml" in missing.stderr
        and "Traceback" not in missing.stderr
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"COOKIE_SUPERVISOR_LISTEN": "0.0.0.0:9479", "COOKIE_SUPERVISOR_API_TOKEN": ""},
            "COOKIE_SUPERVISOR_LISTEN: a non-loopback address needs COOKIE_SUPERVISOR_API_TOKEN",
        ),
        (
            {"COOKIE_SUPERVISOR_LISTEN": "0.0.0.0:9479", "COOKIE_SUPERVISOR_API_TOKEN": " \t "},
            "COOKIE_SUPERVISOR_LISTEN: a non-loopback address needs COOKIE_SUPERVISOR_API_TOKEN",
        ),
        (
            {"COOKIE_SUPERVISOR_LISTEN": "[::]:9479", "COOKIE_SUPERVISOR_API_TOKEN": "x" * 15},
            "COOKIE_SUPERVISOR_API_TOKEN: must be at least 16 bytes",
        ),
        ({"YT_DLP_COOKIES_FILE": ""}, "YT_DLP_COOKIES_FILE: no cookie file configured"),
        ({"YT_DLP_COOKIES_FILE": "  "}, "YT_DLP_COOKIES_FILE: no cookie file configured"),
        ({"YT_DLP_COOKIES_FILE": "/tmp"}, "YT_DLP_COOKIES_FILE: '/tmp' is a directory"),
        ({"REDIS_URL": "http://x"}, "REDIS_URL: must start with"),
        ({"COOKIE_SUPERVISOR_REDIS_URL": "http://x"}, "COOKIE_SUPERVISOR_REDIS_URL: must start"),
        (
            {"COOKIE_SUPERVISOR_FORWARDED_ALLOW_IPS": "10.0.0.1, proxy.local"},
            "COOKIE_SUPERVISOR_FORWARDED_ALLOW_IPS: not an IP address or network: 'proxy.local'",
        ),
        ({"COOKIE_SUPERVISOR_HEADER_TIMEOUT": "0"}, "COOKIE_SUPERVISOR_HEADER_TIMEOUT: must be"),
        ({"COOKIE_SUPERVISOR_LIMIT_CONCURRENCY": "0"}, "COOKIE_SUPERVISOR_LIMIT_CONCURRENCY: "),
    ],
)
def test_refusals_name_the_variable_the_user_set(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(message), str(err.value)  # the name the user wrote, first


def test_a_cookie_source_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[[sources]]\nname = "a"\ncookies_file = "{tmp_path}"\n')
    with pytest.raises(ConfigError, match=r"^sources\[a\]\.cookies_file: .* is a directory"):
        load_settings(cfg)
    cfg.write_text('[[sources]]\nname = "a"\ncookies_file = ""\n')
    with pytest.raises(ConfigError, match=r"^sources\[a\]\.cookies_file: .* is a directory"):
        load_settings(cfg)  # "" is the current directory: refused, never supervised


def test_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    monkeypatch.setenv("COOKIE_SUPERVISOR_API_TOKEN", "")
    assert load_settings().api_token is None  # loopback: an empty line means no token
    monkeypatch.setenv("COOKIE_SUPERVISOR_LISTEN", "0.0.0.0:9479")
    monkeypatch.setenv("COOKIE_SUPERVISOR_API_TOKEN", "  0123456789abcdef \n")
    token = load_settings().api_token
    assert token is not None and token.get_secret_value() == "0123456789abcdef"
    assert "0123456789abcdef" not in repr(load_settings())


def test_settings_for_the_http_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    s = load_settings()
    assert s.forwarded_allow_ips == [] and s.limit_concurrency == 256 and s.header_timeout == 10
    monkeypatch.setenv("COOKIE_SUPERVISOR_FORWARDED_ALLOW_IPS", "10.0.0.1,fd00::/8")
    monkeypatch.setenv("COOKIE_SUPERVISOR_HEADER_TIMEOUT", "5s")
    s = load_settings()
    assert s.forwarded_allow_ips == ["10.0.0.1", "fd00::/8"] and s.header_timeout == 5


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        (
            {"COOKIE_SUPERVISOR_LISTEN": "0.0.0.0:9479", "COOKIE_SUPERVISOR_API_TOKEN": ""},
            "COOKIE_SUPERVISOR_API_TOKEN",
        ),
        ({"YT_DLP_COOKIES_FILE": ""}, "YT_DLP_COOKIES_FILE: no cookie file configured"),
    ],
)
def test_cli_refuses_an_empty_setting_with_exit_2(
    tmp_path: Path, env: dict[str, str], needle: str
) -> None:
    base = {"PATH": "/usr/bin:/bin", "YT_DLP_COOKIES_FILE": str(tmp_path / "c.txt")}
    proc = subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", "run"],
        env={**base, **env, "REDIS_URL": "redis://127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    assert needle in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"COOKIE_SUPERVISOR_WEBHOOK_URL": "ftp://hooks.example/x"},
            "COOKIE_SUPERVISOR_WEBHOOK_URL: must be an http(s) URL with a host",
        ),
        (
            {"COOKIE_SUPERVISOR_WEBHOOK_URL": "https:///no-host"},
            "COOKIE_SUPERVISOR_WEBHOOK_URL: must be an http(s) URL with a host",
        ),
        (
            {
                "COOKIE_SUPERVISOR_WEBHOOK_URL": "https://hooks.example/x",
                "COOKIE_SUPERVISOR_WEBHOOK_SECRET": "short",
            },
            "COOKIE_SUPERVISOR_WEBHOOK_SECRET: must be at least 16 bytes",
        ),
    ],
)
def test_webhook_settings_from_the_environment_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(tmp_path / "c.txt"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value) == message
    assert "short" not in str(err.value) and "ftp://" not in str(err.value)


def test_webhook_tables_are_checked_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(tmp_path / "c.txt"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[[webhooks]]\nname = "ops"\nurl = "https://hooks.example/x"\nevents = ["nope"]\n'
    )
    with pytest.raises(ConfigError, match=r"^webhooks\[ops\]\.events: unknown nope"):
        load_settings(cfg)
    cfg.write_text('[[webhooks]]\nurl = "https://hooks.example/x"\nsecret = "0123456789abcdef"\n')
    [hook] = load_settings(cfg).all_webhooks()
    assert hook.name == "hooks.example" and hook.format == "json" and hook.timeout == 5


# --- settings fail loudly at start ---------------------------------------------------------


def run_daemon(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": "/usr/bin:/bin",
        "YT_DLP_COOKIES_FILE": str(tmp_path / "c.txt"),
        "REDIS_URL": "redis://127.0.0.1:1",
        "COOKIE_SUPERVISOR_LISTEN": "127.0.0.1:1",  # never reached: every case stops before
    }
    return subprocess.run(
        [sys.executable, "-m", "cookie_supervisor", "run"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"COOKIE_SUPERVISOR_STATE_DIR": "/proc/nope"},
            "COOKIE_SUPERVISOR_STATE_DIR: cannot use '/proc/nope' as the state directory: ",
        ),
        (
            {"STATE_DIRECTORY": "/proc/nope"},  # systemd's StateDirectory=, when nothing overrides
            "STATE_DIRECTORY: cannot use '/proc/nope' as the state directory: ",
        ),
        (
            {"COOKIE_SUPERVISOR_JS_RUNTIME": "rhino"},
            "COOKIE_SUPERVISOR_JS_RUNTIME: unknown JS runtime 'rhino' (known: auto, none, deno,",
        ),
        (
            {"COOKIE_SUPERVISOR_JS_RUNTIME": "node:/nonexistent/node"},
            "COOKIE_SUPERVISOR_JS_RUNTIME: /nonexistent/node not found",
        ),
        (
            {"COOKIE_SUPERVISOR_VALIDATE_EVRY": "1h"},
            "COOKIE_SUPERVISOR_VALIDATE_EVRY: unknown setting"
            " (did you mean COOKIE_SUPERVISOR_VALIDATE_EVERY?)",
        ),
        (
            {"COOKIE_SUPERVISOR_REDISURL": "redis://x"},
            "COOKIE_SUPERVISOR_REDISURL: unknown setting (did you mean COOKIE_SUPERVISOR_REDIS_URL?)",
        ),
        (
            {"COOKIE_SUPERVISOR_XYZZY": "1"},
            "COOKIE_SUPERVISOR_XYZZY: unknown setting (`run --help`",
        ),
    ],
)
def test_bad_settings_stop_the_start_with_exit_2(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    proc = run_daemon(env, tmp_path)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"cookie-supervisor: configuration error: {message}"), line


def test_a_state_dir_that_is_a_file_or_read_only_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    proc = run_daemon({"COOKIE_SUPERVISOR_STATE_DIR": str(a_file / "state")}, tmp_path)
    assert proc.returncode == 2 and "COOKIE_SUPERVISOR_STATE_DIR: cannot use" in proc.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'state_dir = "{a_file}"\n')
    proc = run_daemon({"COOKIE_SUPERVISOR_CONFIG": str(cfg)}, tmp_path)
    assert proc.returncode == 2 and "state_dir (config file): cannot use" in proc.stderr


def test_a_usable_state_dir_is_created_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", str(tmp_path / "c.txt"))
    monkeypatch.setenv("COOKIE_SUPERVISOR_STATE_DIR", str(tmp_path / "a" / "state"))
    preflight(load_settings())
    state = tmp_path / "a" / "state"
    assert state.is_dir() and (state.stat().st_mode & 0o777) == 0o700
    assert list(state.iterdir()) == []  # the write test leaves nothing behind


def test_known_js_runtimes_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    for value in ("auto", "none", "deno", "node", "bun", "node:/usr/bin/node"):
        monkeypatch.setenv("COOKIE_SUPERVISOR_JS_RUNTIME", value)
        assert load_settings().js_runtime == value


def test_an_empty_variable_is_unset_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    defaults = load_settings()
    for name in variable_names():
        if name not in ("YT_DLP_COOKIES_FILE", "COOKIE_SUPERVISOR_COOKIES_FILE"):
            monkeypatch.setenv(name, "")
    settings = load_settings()  # an error here is the bug: `VAR=` refused as a value
    assert settings == defaults
    [source] = settings.all_sources()
    assert source.validate_every == 1800 and source.validation_urls == [DEFAULT_VALIDATION_URL]
    monkeypatch.setenv("COOKIE_SUPERVISOR_VALIDATION_URLS", "none")
    assert load_settings().all_sources()[0].validation_urls == []  # the explicit "no URLs"


def test_an_empty_top_level_key_of_the_toml_file_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    cfg = tmp_path / "c.toml"
    cfg.write_text('validate_every = ""\nredis_url = " "\njs_runtime = ""\nstate_dir = ""\n')
    settings = load_settings(cfg)
    assert settings.redis_url == "redis://localhost:6379" and settings.js_runtime == "auto"
    assert settings.state_dir is None and settings.all_sources()[0].validate_every == 1800


def test_names_read_by_other_programs_are_not_typos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YT_DLP_COOKIES_FILE", "/srv/c.txt")
    monkeypatch.setenv("COOKIE_SUPERVISOR_URL", "http://127.0.0.1:9479")  # the backend's client
    monkeypatch.setenv("COOKIE_SUPERVISOR_PACKAGE", "dist/x.whl")  # scripts/install.sh
    monkeypatch.setenv("COOKIE_SUPERVISOR_REDIS_URL", "redis://r:6379")  # REDIS_URL's twin
    assert load_settings().redis_url == "redis://r:6379"
