"""Every setting, its default and its validation: the one model the daemon is configured through.

Sources of values, strongest first: environment variables, then the optional TOML file
(`COOKIE_SUPERVISOR_CONFIG` or `run --config FILE`), then the defaults below. An environment
variable set to the empty string is not set, whichever the setting (an env file's `VAR=` line).
"""

from __future__ import annotations

import contextlib
import difflib
import ipaddress
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from cookie_supervisor.classify import DEFAULT_TRIGGERS, Reason
from cookie_supervisor.model import NotifyEvent, Policy
from cookie_supervisor.probe import JS_RUNTIMES, default_account_check_url, detect_js_runtime
from cookie_supervisor.probe_args import check_args, split_args

DEFAULT_VALIDATION_URL = "https://www.youtube.com/watch?v=jNQXAC9IVRw"
ENV_PREFIX = "COOKIE_SUPERVISOR_"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# A bearer token on a listener other hosts can reach must resist guessing.
MIN_TOKEN_BYTES = 16
# `COOKIE_SUPERVISOR_VALIDATION_URLS=none`: no validation downloads, offline checks only (an
# empty value is "not set", which means the default URL).
NO_URLS = "none"
# COOKIE_SUPERVISOR_* names read by other programs than the daemon, so never a typo:
# the backend's client (client.py) and `make install` (scripts/install.sh).
_FOREIGN_NAMES = frozenset({ENV_PREFIX + "URL", ENV_PREFIX + "PACKAGE"})


class ConfigError(Exception):
    """A setting is invalid; the message names it and says what is wrong, in one line."""


def parse_duration(value: Any) -> float:
    """`90`, `"90s"`, `"30m"`, `"1h30m"`, `"7d"` → seconds; `0` means "off" where allowed."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 10m, 7d")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(
                    f"invalid duration {value!r} (expected e.g. 90s, 30m, 1h30m, 7d)"
                ) from None
            seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    else:
        raise ValueError("expected a duration such as 30s, 10m, 7d")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def _split_list(value: Any) -> Any:
    """Env vars carry lists comma-separated; TOML carries real arrays."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _urls(value: Any) -> Any:
    """`none` is the explicit "no URLs"; otherwise a list like any other."""
    if isinstance(value, str) and value.strip().lower() == NO_URLS:
        return []
    return _split_list(value)


def _blank_is_unset(value: Any) -> Any:
    """`VAR=` (an env file's line left empty) means "not set", never "" or the current directory."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _cookie_file(value: Path) -> Path:
    # A directory would be "inspected" as a jar that never parses, and refreshed for nothing.
    if value.is_dir():
        raise ValueError(f"{str(value)!r} is a directory, not a cookie file")
    return value


def _ip_networks(value: list[str]) -> list[str]:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or network: {item[:64]!r}") from None
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]
CookieFile = Annotated[Path, AfterValidator(_cookie_file)]
UrlList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
ValidationUrls = Annotated[list[str], NoDecode, BeforeValidator(_urls)]
ReasonSet = Annotated[frozenset[Reason], NoDecode, BeforeValidator(_split_list)]
# Extra yt-dlp options for every probe of a source: TOML array (or a shell-quoted string, as the
# environment variable is), checked against probe_args.ALLOWED.
YtdlpArgs = Annotated[
    tuple[str, ...], NoDecode, BeforeValidator(split_args), AfterValidator(check_args)
]


class SourceSettings(BaseModel):
    """One cookie jar under supervision (a `[[sources]]` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    cookies_file: CookieFile
    validation_urls: ValidationUrls = Field(default_factory=lambda: [DEFAULT_VALIDATION_URL])
    validate_every: Duration = 1800.0
    validate_jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    probe_mode: Literal["download", "metadata"] = "download"
    probe_timeout: Duration = 120.0
    # appended to every yt-dlp run of this source: what the backend passes (proxy, PO tokens)
    ytdlp_args: YtdlpArgs = ()
    missing_grace: Duration = 60.0
    corrupt_grace: Duration = 30.0
    rotate_after: Duration = 7 * 86400.0
    renew_before: Duration = 2 * 86400.0
    upload_timeout: Duration = 600.0
    refresh_cooldown: Duration = 600.0
    # After an unsuccessful refresh the next automatic one waits backoff × 2^(n-1), capped.
    refresh_backoff: Duration = 1800.0
    refresh_backoff_max: Duration = 86400.0
    # A metadata-only request only an honoured login session can answer. None: YouTube's
    # liked-videos playlist when the validation URLs are YouTube's; "": off.
    account_check_url: str | None = None
    # A jar that lost its login cookies by shrinking may be an upload caught mid-write.
    logged_out_confirm: Duration = 10.0
    trigger_on: ReasonSet = DEFAULT_TRIGGERS
    # Passive detection: the backend's systemd units and plain log files to follow.
    journal_units: UrlList = Field(default_factory=list)
    log_files: Annotated[list[Path], NoDecode, BeforeValidator(_split_list)] = Field(
        default_factory=list
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SOURCE_NAME.match(value):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
        return value

    @field_validator("validation_urls")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not re.match(r"^https?://[^\s/]+", url):
                raise ValueError(f"not an http(s) URL: {url!r}")
        return value

    @field_validator("probe_timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    def policy(self) -> Policy:
        """What the decision core applies to this source, as plain data (it never sees pydantic):
        the account check URL resolved (None: off; the default when the source sets none)."""
        account = self.account_check_url
        if account is None:
            account = default_account_check_url(self.validation_urls)
        return Policy(
            name=self.name,
            cookies_file=self.cookies_file,
            validation_urls=tuple(self.validation_urls),
            account_check_url=account or None,
            trigger_on=frozenset(self.trigger_on),
            validate_every=self.validate_every,
            missing_grace=self.missing_grace,
            corrupt_grace=self.corrupt_grace,
            logged_out_confirm=self.logged_out_confirm,
            rotate_after=self.rotate_after,
            renew_before=self.renew_before,
            upload_timeout=self.upload_timeout,
        )


# What a webhook can be told about (the `events` of a `[[webhooks]]` table): what the core
# notifies, named once in model.NotifyEvent.
WEBHOOK_EVENTS: tuple[str, ...] = get_args(NotifyEvent)


class WebhookSettings(BaseModel):
    """One receiver of refresh notifications (a `[[webhooks]]` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""  # the `webhook` label; defaults to the URL's host
    url: str
    secret: SecretStr | None = None
    events: UrlList = Field(default_factory=lambda: list(WEBHOOK_EVENTS))
    format: Literal["json", "slack"] = "json"
    timeout: Duration = 5.0
    max_age: Duration = 3600.0
    outbox_limit: Annotated[int, Field(ge=1)] = 1000

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        # The `webhook` label: the URL's host unless named (never the URL: it may be a credential).
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("url"), str):
            with contextlib.suppress(ValueError):
                data = {**data, "name": urlsplit(data["url"]).hostname or ""}
        return data

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_webhook_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        return check_webhook_secret(value)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        if unknown := sorted(set(value) - set(WEBHOOK_EVENTS)):
            raise ValueError(f"unknown {', '.join(unknown)} (known: {', '.join(WEBHOOK_EVENTS)})")
        return value

    @field_validator("timeout", "max_age")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value


def check_webhook_url(value: str) -> str:
    """http(s) with a host; the message never repeats the URL (a Slack URL is a credential)."""
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError("must be an http(s) URL with a host")
    return value


def check_webhook_secret(value: SecretStr | None) -> SecretStr | None:
    if value is not None and len(value.get_secret_value().encode()) < 16:
        raise ValueError("must be at least 16 bytes")
    return value


# Settings of the `default` source that may also come from the environment.
_DEFAULT_SOURCE_FIELDS = (
    "validation_urls",
    "validate_every",
    "probe_mode",
    "probe_timeout",
    "ytdlp_args",
)


class Settings(BaseSettings):
    """The daemon's configuration. Field names map to `COOKIE_SUPERVISOR_<NAME>` env vars."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        # `VAR=` is "not set" for every variable: the default applies, never an error.
        env_ignore_empty=True,
        # The docstring under each field is its description (`run --help`, README).
        use_attribute_docstrings=True,
    )

    redis_url: str = Field("redis://localhost:6379", validation_alias="REDIS_URL")
    """the Redis the Bull queue lives in (redis://, rediss:// or unix://)"""
    cookies_file: Annotated[CookieFile | None, BeforeValidator(_blank_is_unset)] = Field(
        None, validation_alias="YT_DLP_COOKIES_FILE"
    )
    """the cookie file of the source named `default`"""
    config: Path | None = None
    """TOML file with more settings, [[sources]] and [[webhooks]]"""
    listen: str = "127.0.0.1:9479"
    """HTTP address host:port; a non-loopback one needs the API token"""
    # Blank means none; surrounding white space is never part of a token (clients' is stripped).
    api_token: Annotated[SecretStr | None, BeforeValidator(_blank_is_unset)] = None
    """bearer token for POST routes (and GET /api/cookies/* off loopback); 16+ bytes off loopback"""
    rate_limit: Annotated[int, Field(ge=0)] = 30
    """POST requests (and refused tokens) per minute per client; 0 = off"""
    # Proxies whose X-Forwarded-For is believed; none by default.
    forwarded_allow_ips: Annotated[UrlList, AfterValidator(_ip_networks)] = Field(
        default_factory=list
    )
    """proxies (IPs, networks) whose X-Forwarded-For names the client"""
    limit_concurrency: Annotated[int, Field(ge=1)] = 256
    """HTTP connections held at once"""
    header_timeout: Duration = 10.0
    """time a connection has to deliver a whole request"""
    # Where state that survives a restart lives; default $STATE_DIRECTORY (systemd), else none.
    state_dir: Path | None = None
    """where state survives a restart (default $STATE_DIRECTORY, else none)"""
    queue: str = "cookie-refresh"
    """Bull queue name the cookie extractor consumes"""
    queue_prefix: str = "bull"
    """Bull key prefix"""
    job_name: str = "__default__"
    """Bull job name (a worker's plain process(fn) handles __default__)"""
    job_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    """Bull attempts per refresh job"""
    job_backoff: Duration = 60.0
    """Bull exponential backoff base delay"""
    job_keep: Annotated[int, Field(ge=1)] = 100
    """finished jobs kept (removeOnComplete / removeOnFail)"""
    queue_poll_interval: Duration = 2.0
    """how often queue counts and job outcomes are read"""
    redis_backoff_max: Duration = 30.0
    """longest wait between reconnection attempts while Redis is down"""
    debounce: Duration = 0.25
    """quiet time that ends a burst of file events"""
    log_format: Literal["text", "json"] = "text"
    """text or json"""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """debug, info, warning or error"""
    yt_dlp_command: UrlList = Field(default_factory=list)
    """the yt-dlp command, comma-separated (default: this Python's -m yt_dlp)"""
    js_runtime: str = "auto"
    """JS runtime for yt-dlp: auto, none, deno, node, bun, or NAME:PATH"""
    validation_urls: ValidationUrls | None = None
    """validation URLs of the default source, comma-separated; none = offline checks only"""
    validate_every: Duration | None = None
    """validation interval of the default source; 0 = no periodic validation"""
    probe_mode: Literal["download", "metadata"] | None = None
    """download (10 KiB ranged GET) or metadata"""
    probe_timeout: Duration | None = None
    """hard timeout of one yt-dlp run"""
    ytdlp_args: YtdlpArgs | None = None
    """extra yt-dlp options of the default source's probes, shell-quoted (allow-listed)"""
    sources: list[SourceSettings] = Field(default_factory=list)
    """cookie jars under supervision (TOML tables)"""
    webhook_url: str | None = None
    """one webhook receiver (more as [[webhooks]] in the TOML file)"""
    webhook_secret: SecretStr | None = None
    """HMAC secret of that webhook, 16+ bytes"""
    webhooks: list[WebhookSettings] = Field(default_factory=list)
    """webhook receivers (TOML tables)"""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs (see `load_settings`); the environment beats it.
        return env_settings, init_settings

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("js_runtime")
    @classmethod
    def _js_runtime(cls, value: str) -> str:
        # yt-dlp's --js-runtimes syntax: a name, or name:path. Anything else would quietly
        # become "no runtime" and every YouTube validation `no_js_runtime`.
        name = value.partition(":")[0]
        if value not in ("auto", "none") and name not in JS_RUNTIMES:
            known = ", ".join(("auto", "none", *JS_RUNTIMES))
            raise ValueError(f"unknown JS runtime {name[:32]!r} (known: {known}; or NAME:PATH)")
        return value

    @field_validator("header_timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("must be greater than 0")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("queue", "queue_prefix")
    @classmethod
    def _key_part(cls, value: str) -> str:
        if not value or any(c in value for c in ": \t\n"):
            raise ValueError("must be non-empty without ':' or white space")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return check_webhook_url(value) if value else None

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return check_webhook_secret(value)

    @model_validator(mode="after")
    def _webhook_names(self) -> Settings:
        names = [h.name for h in self.all_webhooks()]
        if len(names) != len(set(names)):
            raise ValueError("webhooks: names must be unique (name webhooks that share a host)")
        return self

    @model_validator(mode="after")
    def _sources(self) -> Settings:
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError("sources: names must be unique")
        if self.cookies_file is None and not self.sources:
            raise ValueError(
                "YT_DLP_COOKIES_FILE: no cookie file configured (set it or add [[sources]])"
            )
        if not is_loopback(self.host):
            if self.api_token is None:
                raise ValueError(
                    "COOKIE_SUPERVISOR_LISTEN: a non-loopback address needs"
                    " COOKIE_SUPERVISOR_API_TOKEN"
                )
            if len(self.api_token.get_secret_value().encode()) < MIN_TOKEN_BYTES:
                raise ValueError(
                    f"COOKIE_SUPERVISOR_API_TOKEN: must be at least {MIN_TOKEN_BYTES} bytes"
                    " on a non-loopback address (COOKIE_SUPERVISOR_LISTEN)"
                )
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def state_path(self) -> Path | None:
        """The state directory: the setting, else systemd's StateDirectory=, else none."""
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        return Path(env) if env else None

    def all_webhooks(self) -> list[WebhookSettings]:
        """The TOML webhooks, plus one from COOKIE_SUPERVISOR_WEBHOOK_URL/_SECRET."""
        hooks = list(self.webhooks)
        if self.webhook_url:
            hooks.append(WebhookSettings(url=self.webhook_url, secret=self.webhook_secret))
        return hooks

    def all_sources(self) -> list[SourceSettings]:
        """The TOML sources, plus `default` from YT_DLP_COOKIES_FILE and its env overrides."""
        sources = list(self.sources)
        if self.cookies_file is not None and "default" not in {s.name for s in sources}:
            overrides = {
                f: getattr(self, f) for f in _DEFAULT_SOURCE_FIELDS if getattr(self, f) is not None
            }
            sources.insert(
                0, SourceSettings(name="default", cookies_file=self.cookies_file, **overrides)
            )
        return sources


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(
    config_file: Path | None = None, env_file: Mapping[str, str] | None = None, **overrides: Any
) -> Settings:
    """Build the settings, or raise ConfigError with one line naming the bad setting.

    `env_file`: the variables of an environment file (`check --local --env-file`), beneath the
    environment and above the TOML file, as if systemd had put them in the environment.
    """
    from_file = {k: v for k, v in (env_file or {}).items() if v.strip() and not os.environ.get(k)}
    check_variable_names([*(env_file or {}), *os.environ])
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG") or None
    path = path or from_file.get(ENV_PREFIX + "CONFIG")
    values: dict[str, Any] = {}
    if path:
        # A top-level `key = ""` is not set either, as an empty variable is not.
        values = {k: v for k, v in read_toml(Path(path)).items() if not _blank(v)}
        values["config"] = path
    values.update(_fields_of(from_file))
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, values, from_file)) from None


def variable_names() -> dict[str, str]:
    """Every environment variable the settings read → its field."""
    names = {}
    for name, field in Settings.model_fields.items():
        names[ENV_PREFIX + name.upper()] = name
        if isinstance(field.validation_alias, str):
            names[field.validation_alias] = name
    return names


def check_variable_names(names: list[str]) -> None:
    """A COOKIE_SUPERVISOR_* variable no setting reads is a typo: refused like a TOML typo."""
    known = variable_names()
    for name in names:
        if name.startswith(ENV_PREFIX) and name not in known and name not in _FOREIGN_NAMES:
            # Compared without the prefix every candidate shares, which would make anything close.
            ours = [k.removeprefix(ENV_PREFIX) for k in known if k.startswith(ENV_PREFIX)]
            close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX), ours, n=1)
            hint = (
                f" (did you mean {ENV_PREFIX}{close[0]}?)"
                if close
                else " (`run --help` lists them)"
            )
            raise ConfigError(f"{name}: unknown setting{hint}")


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _fields_of(variables: Mapping[str, str]) -> dict[str, str]:
    known = variable_names()
    return {known[k]: v for k, v in variables.items() if k in known}


def preflight(settings: Settings) -> None:
    """What a valid value can still get wrong on this machine, checked before the daemon starts
    rather than found at the first save or the first validation: ConfigError naming it."""
    state = settings.state_path()
    if state is not None:
        var = _origin(settings, "state_dir") if settings.state_dir else "STATE_DIRECTORY"
        try:
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Writable for real (read-only mounts, ACLs, root squash): access(2) can be wrong.
            with tempfile.TemporaryFile(dir=state):
                pass
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
            raise ConfigError(
                f"{var}: cannot use {str(state)[:200]!r} as the state directory: {why}"
            ) from None
    runtime = settings.js_runtime
    if runtime not in ("auto", "none") and detect_js_runtime(runtime) is None:
        raise ConfigError(
            f"{_origin(settings, 'js_runtime')}: {runtime.partition(':')[2] or runtime} not found"
            " (on PATH, or at the path given as NAME:PATH); `auto` picks whichever is there"
        )


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict, or ConfigError naming the file and what is wrong."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def _origin(settings: Settings, key: str) -> str:
    """The name of a setting as the user gave it, for a check made after loading."""
    return _setting_name(key, {key: True} if settings.config else {})


def _describe(
    exc: ValidationError, file_values: dict[str, Any], env_file: Mapping[str, str] | None = None
) -> str:
    """The first error as `setting: problem`, naming the env var or the TOML key it came from."""
    err = exc.errors(include_url=False, include_input=False)[0]
    loc = [str(p) for p in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting"
    if not loc:
        return msg  # model-level checks already name their setting
    if loc[0] == "sources" and len(loc) > 1 and loc[1].isdigit():
        sources = file_values.get("sources") or []
        idx = int(loc[1])
        name = (
            sources[idx].get("name", idx)
            if idx < len(sources) and isinstance(sources[idx], dict)
            else idx
        )
        return f"sources[{name}].{'.'.join(loc[2:]) or '?'}: {msg}"
    if loc[0] == "webhooks" and len(loc) > 1 and loc[1].isdigit():
        hooks = file_values.get("webhooks") or []
        idx = int(loc[1])
        hook = hooks[idx] if idx < len(hooks) and isinstance(hooks[idx], dict) else {}
        return f"webhooks[{hook.get('name') or idx}].{'.'.join(loc[2:]) or '?'}: {msg}"
    return f"{'.'.join([_setting_name(loc[0], file_values, env_file), *loc[1:]])}: {msg}"


def _setting_name(
    key: str, file_values: dict[str, Any], env_file: Mapping[str, str] | None = None
) -> str:
    """The name the user wrote: the env var that is set (`REDIS_URL`, or its prefixed twin), else
    the TOML key. pydantic reports a field by its alias or by its name, whichever supplied it."""
    fields = Settings.model_fields
    name = next((n for n, f in fields.items() if key in (n, f.validation_alias)), key)
    alias = fields[name].validation_alias if name in fields else None
    env_names = [n for n in (alias, ENV_PREFIX + name.upper()) if isinstance(n, str)]
    if set_names := [n for n in env_names if os.environ.get(n)]:
        return set_names[0]
    if from_file := [n for n in env_names if n in (env_file or {})]:
        return f"{from_file[0]} (environment file)"
    if name in file_values:
        return f"{name} (config file)"
    return env_names[0]
