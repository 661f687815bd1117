"""Where a client finds the running daemon: the service's environment file, the base URL of its
listener, its token, found where the service itself finds its settings (config.py).

The command line's discovery. The backend's `client.report_failure`, standard library only, reads
its own two variables (COOKIE_SUPERVISOR_URL, COOKIE_SUPERVISOR_API_TOKEN) instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from cookie_supervisor.config import ENV_PREFIX, ConfigError, read_toml

DEFAULT_ENV_FILE = Path("/etc/cookie-supervisor/cookie-supervisor.env")
LISTEN_VAR, TOKEN_VAR = ENV_PREFIX + "LISTEN", ENV_PREFIX + "API_TOKEN"
DEFAULT_LISTEN = "127.0.0.1:9479"


def find_daemon(
    url: str | None,
    env_file: Path | None,
    environ: Mapping[str, str],
    config: Path | None = None,
) -> tuple[str, str | None]:
    """(the daemon's base URL, its token): `url` if given (`--url`), else where it listens."""
    values = daemon_settings(env_file, environ, config)
    found = url or base_url(values.get(LISTEN_VAR) or DEFAULT_LISTEN)
    if urlsplit(found).scheme not in ("http", "https"):
        raise ConfigError(f"--url: expected an http:// or https:// URL, got {found!r}")
    return found.rstrip("/"), values.get(TOKEN_VAR) or None


def token_hint(token: str | None) -> str:
    """What to say when the daemon refuses the token: where it should have come from."""
    if token is None and DEFAULT_ENV_FILE.exists() and not os.access(DEFAULT_ENV_FILE, os.R_OK):
        return f"no token: {DEFAULT_ENV_FILE} is not readable by this user"
    return f"set {TOKEN_VAR} in the environment or the environment file"


def daemon_settings(
    env_file: Path | None, environ: Mapping[str, str], config: Path | None = None
) -> dict[str, str]:
    """Where the daemon listens and its token, found where the service finds them.

    Strongest first: the environment, the environment file, the TOML file it names.
    """
    values = env_file_values(env_file)
    # An empty variable is not set: it does not hide the file's value.
    values.update({k: v for k, v in environ.items() if k.startswith(ENV_PREFIX) and v})
    toml_path = config or values.get(ENV_PREFIX + "CONFIG")
    if toml_path:
        table = read_toml(Path(toml_path))
        for key, var in (("listen", LISTEN_VAR), ("api_token", TOKEN_VAR)):
            if var not in values and isinstance(table.get(key), str):
                values[var] = table[key]
    return values


def env_file_values(env_file: Path | None) -> dict[str, str]:
    """The service's environment file: the one given, else the installed one when readable."""
    if env_file is not None:
        return read_env_file(env_file)
    if os.access(DEFAULT_ENV_FILE, os.R_OK):
        return read_env_file(DEFAULT_ENV_FILE)
    return {}


def read_env_file(path: Path) -> dict[str, str]:
    """`KEY=value` lines as systemd's EnvironmentFile= reads them (comments, optional quotes)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--env-file {path}: {exc.strerror}") from None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def base_url(listen: str) -> str:
    """The URL a client on this host reaches a `host:port` listener at."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0"):  # a wildcard listener is reached on loopback
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
