"""Every setting, its default and its validation: the one model the daemon is configured through.

Sources of values, strongest first: environment variables, then the optional TOML file
(`COOKIE_SUPERVISOR_CONFIG` or `run --config FILE`), then the defaults below.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
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

DEFAULT_VALIDATION_URL = "https://www.youtube.com/watch?v=jNQXAC9IVRw"
ENV_PREFIX = "COOKIE_SUPERVISOR_"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


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


Duration = Annotated[float, BeforeValidator(parse_duration)]
UrlList = Annotated[list[str], NoDecode, BeforeValidator(_split_list)]
ReasonSet = Annotated[frozenset[Reason], NoDecode, BeforeValidator(_split_list)]


class SourceSettings(BaseModel):
    """One cookie jar under supervision (a `[[sources]]` table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    cookies_file: Path
    validation_urls: UrlList = Field(default_factory=lambda: [DEFAULT_VALIDATION_URL])
    validate_every: Duration = 1800.0
    validate_jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    probe_mode: Literal["download", "metadata"] = "download"
    probe_timeout: Duration = 120.0
    missing_grace: Duration = 60.0
    corrupt_grace: Duration = 30.0
    rotate_after: Duration = 7 * 86400.0
    renew_before: Duration = 2 * 86400.0
    upload_timeout: Duration = 600.0
    refresh_cooldown: Duration = 600.0
    trigger_on: ReasonSet = DEFAULT_TRIGGERS

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


# Settings of the `default` source that may also come from the environment.
_DEFAULT_SOURCE_FIELDS = ("validation_urls", "validate_every", "probe_mode", "probe_timeout")


class Settings(BaseSettings):
    """The daemon's configuration. Field names map to `COOKIE_SUPERVISOR_<NAME>` env vars."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, populate_by_name=True
    )

    redis_url: str = Field("redis://localhost:6379", validation_alias="REDIS_URL")
    cookies_file: Path | None = Field(None, validation_alias="YT_DLP_COOKIES_FILE")
    config: Path | None = None
    listen: str = "127.0.0.1:9479"
    api_token: SecretStr | None = None
    rate_limit: Annotated[int, Field(ge=0)] = 30
    queue: str = "cookie-refresh"
    queue_prefix: str = "bull"
    job_name: str = "__default__"
    job_attempts: Annotated[int, Field(ge=1, le=100)] = 3
    job_backoff: Duration = 60.0
    job_keep: Annotated[int, Field(ge=1)] = 100
    queue_poll_interval: Duration = 2.0
    redis_backoff_max: Duration = 30.0
    debounce: Duration = 0.25
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    yt_dlp_command: UrlList = Field(default_factory=list)
    js_runtime: str = "auto"
    validation_urls: UrlList | None = None
    validate_every: Duration | None = None
    probe_mode: Literal["download", "metadata"] | None = None
    probe_timeout: Duration | None = None
    sources: list[SourceSettings] = Field(default_factory=list)

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

    @model_validator(mode="after")
    def _sources(self) -> Settings:
        names = [s.name for s in self.sources]
        if len(names) != len(set(names)):
            raise ValueError("sources: names must be unique")
        if self.cookies_file is None and not self.sources:
            raise ValueError(
                "YT_DLP_COOKIES_FILE: no cookie file configured (set it or add [[sources]])"
            )
        if self.api_token is None and not is_loopback(self.host):
            raise ValueError(
                "COOKIE_SUPERVISOR_LISTEN: a non-loopback address needs COOKIE_SUPERVISOR_API_TOKEN"
            )
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

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


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings, or raise ConfigError with one line naming the bad setting."""
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG") or None
    values: dict[str, Any] = {}
    if path:
        values = _read_toml(Path(path))
        values["config"] = path
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, values)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: invalid TOML: {exc}") from None


def _describe(exc: ValidationError, file_values: dict[str, Any]) -> str:
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
    field = Settings.model_fields.get(loc[0])
    env = field.validation_alias if field and isinstance(field.validation_alias, str) else None
    name = env or (ENV_PREFIX + loc[0].upper())
    if loc[0] in file_values:
        name = f"{loc[0]} (config file)" if name not in os.environ else name
    return f"{'.'.join([name, *loc[1:]])}: {msg}"
