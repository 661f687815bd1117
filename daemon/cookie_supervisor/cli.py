"""The command line: `run` the daemon, and ask the running daemon how its cookies are.

`status`, `check`, `validate` and `trigger` are clients of the daemon's HTTP API, spoken only
through client.py's DaemonClient: the address and token come from the same environment file the
service reads (discovery.py), so what they show is the daemon's own state. `run` is the
only command that builds the daemon's runtime; `check --local` builds only its validator.
`inspect`, `classify` and `version` need no daemon at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from pydantic_core import PydanticUndefined

from cookie_supervisor import __version__, cookiefile
from cookie_supervisor.classify import Reason, classify, describe
from cookie_supervisor.client import DaemonClient, DaemonError, DaemonRefused, DaemonUnreachable
from cookie_supervisor.config import (
    ENV_PREFIX,
    ConfigError,
    Settings,
    SourceSettings,
    load_settings,
    preflight,
)
from cookie_supervisor.discovery import (
    DEFAULT_ENV_FILE,
    LISTEN_VAR,
    TOKEN_VAR,
    env_file_values,
    find_daemon,
    token_hint,
)

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
# `check` speaks the monitoring-plugin convention (Nagios, Icinga, Sensu): 0 OK, 1 WARNING (fresh
# cookies fix it), 2 CRITICAL (they cannot), 3 UNKNOWN (no verdict: no daemon, refused, bad answer).
EXIT_UNKNOWN = 3
# Several sources: the worst wins, in Icinga's order of severity.
_SEVERITY = {EXIT_OK: 0, EXIT_PROBLEM: 1, EXIT_UNKNOWN: 2, EXIT_USAGE: 3}
# What a person may ask a refresh for; the API itself stays lenient for backends.
TRIGGER_REASONS = sorted({r.value for r in Reason if r.fixable} | {Reason.MANUAL.value})
QUICK_TIMEOUT = 10.0
VALIDATE_TIMEOUT = 900.0  # a validation in the daemon runs yt-dlp, up to probe_timeout per URL
# Settings that only a TOML table can carry, left out of `run --help`'s variable list.
_TOML_ONLY = {"sources", "webhooks"}

EXIT_CODES = """\
exit codes: 0 fine; 1 a problem (a failure fresh cookies fix, no daemon answering, Redis down,
a refresh not enqueued now); 2 bad usage, bad configuration, or a failure fresh cookies cannot fix.
`check` follows the monitoring-plugin convention: 0 OK, 1 fresh cookies fix it, 2 they cannot,
3 UNKNOWN (no daemon answers, rate limited, refused, bad answer or bad usage).
"""


class _Parser(argparse.ArgumentParser):
    """argparse, with the exit code of a usage error per command (`check` says UNKNOWN)."""

    usage_exit = EXIT_USAGE

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(self.usage_exit, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    args, extra = _parser().parse_known_args(argv)
    if extra:  # said by the command's parser, so with the command's exit code for usage errors
        args.parser.error(f"unrecognized arguments: {' '.join(extra)}")
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except ConfigError as exc:
        print(f"cookie-supervisor: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DaemonUnreachable as exc:
        print(f"cookie-supervisor: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    except DaemonRefused as exc:
        print(f"cookie-supervisor: {exc}", file=sys.stderr)
        return EXIT_PROBLEM if exc.status in (429, 503) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130


# --- the parser ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="cookie-supervisor",
        description="Keeps the YouTube cookies of a yt-dlp download backend alive: the daemon, "
        "and a client of the running daemon.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"cookie-supervisor {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND", title="commands", parser_class=_Parser)

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help: str, **kw: Any
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, **kw)
        sp.set_defaults(func=func, parser=sp)
        return sp

    client = _client_options()
    sp = command(
        "run",
        _run,
        "run the daemon in the foreground (what the systemd unit starts)",
        epilog=_environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_option(sp)

    sp = command(
        "status",
        _status,
        "the running daemon's view of every source: file, last validation, refresh jobs, queue",
        parents=[client],
    )
    sp.add_argument("--source", help="show only this source (default: all)")
    _json_option(sp)

    sp = command(
        "check",
        _check,
        "the running daemon's verdict on the cookies, for cron or a monitoring check "
        "(exit 0 OK, 1 fresh cookies fix it, 2 they cannot, 3 UNKNOWN: no daemon answers, "
        "rate limited, refused or a bad answer); runs no validation of its own",
        parents=[client],
    )
    assert isinstance(sp, _Parser)
    sp.usage_exit = EXIT_UNKNOWN
    sp.add_argument("--source", help="check only this source (default: all; the worst one wins)")
    sp.add_argument(
        "--local",
        action="store_true",
        help="no daemon: read the settings (the environment, then --env-file, then the TOML "
        "file), check the file and run one yt-dlp validation here",
    )
    _config_option(sp, "with --local: the TOML file (default: $COOKIE_SUPERVISOR_CONFIG)")
    _json_option(sp)

    sp = command(
        "validate",
        _validate,
        "make the running daemon validate the cookies now (yt-dlp); it records the result "
        "and acts on it like on any other validation",
        parents=[client],
    )
    sp.add_argument("--source", help="the source to validate (default: the daemon's first)")
    _json_option(sp)

    sp = command(
        "trigger",
        _trigger,
        "ask the running daemon for a cookie refresh (exit 0 a job is pending, "
        "1 none now: Redis down, cooldown or backoff, 2 ignored)",
        parents=[client],
    )
    sp.add_argument(
        "--reason",
        required=True,
        choices=TRIGGER_REASONS,
        metavar="REASON",
        help=f"why the cookies need a refresh: {', '.join(TRIGGER_REASONS)}",
    )
    sp.add_argument("--source", help="the source to refresh (default: the daemon's first)")
    sp.add_argument(
        "--error",
        help="the failure text yt-dlp printed; the daemon classifies it and may refuse "
        "failures fresh cookies cannot fix",
    )
    sp.add_argument(
        "--force",
        action="store_true",
        help="bypass the cooldown after a finished job (never a pending job)",
    )
    _json_option(sp)

    sp = command(
        "inspect",
        _inspect,
        "report on a cookie file the way yt-dlp reads it (never prints a cookie value); "
        "exit 0 a logged-in jar, 1 a problem fresh cookies fix (missing, unparseable, logged "
        "out, expired), 2 one they cannot (unreadable, not a file, an OS error)",
    )
    sp.add_argument("file", type=Path, help="the Netscape cookie file")
    _json_option(sp)

    sp = command("classify", _classify, "classify a yt-dlp error text into a reason")
    sp.add_argument("text", nargs="+", help="the error text (several words are joined)")

    command("version", _version, "print the version")
    return p


def _client_options() -> argparse.ArgumentParser:
    """Where the daemon is: the options every client command shares."""
    client = argparse.ArgumentParser(add_help=False)
    group = client.add_argument_group("daemon")
    group.add_argument(
        "--url",
        help=f"the daemon's base URL (default: from {LISTEN_VAR}, else http://127.0.0.1:9479)",
    )
    group.add_argument(
        "--env-file",
        type=Path,
        metavar="FILE",
        help=f"the service's environment file, read for {LISTEN_VAR} and {TOKEN_VAR} "
        f"(default: {DEFAULT_ENV_FILE} when readable); the environment wins over it. "
        "The token is never a command-line option: arguments are visible to every user in ps",
    )
    return client


def _config_option(sp: argparse.ArgumentParser, help: str | None = None) -> None:
    sp.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=help
        or "TOML file with more settings and [[sources]] (default: $COOKIE_SUPERVISOR_CONFIG)",
    )


def _json_option(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")


def _environment_help() -> str:
    """Every environment variable `run` reads, from the settings model itself so it cannot drift."""
    rows = []
    for name, field in Settings.model_fields.items():
        if name in _TOML_ONLY:
            continue
        alias = field.validation_alias
        var = alias if isinstance(alias, str) else ENV_PREFIX + name.upper()
        default = field.get_default(call_default_factory=True)
        if default is None and name in SourceSettings.model_fields:  # the source's own default
            source_default = SourceSettings.model_fields[name].get_default(
                call_default_factory=True
            )
            if source_default not in (None, PydanticUndefined):
                default = f"{_shown(source_default)} (source 'default')"
        rows.append((var, name, _shown(default), field.description or ""))
    width = max(len(var) for var, _, _, _ in rows)
    lines = [
        f"  {var:<{width}}  {shown}\n      {key}: {about}".rstrip()
        for var, key, shown, about in rows
    ]
    intro = (
        "settings: each is an environment variable (with its default) or a top-level key of the "
        "TOML file (below it, with its meaning). The environment wins over the file; an empty "
        "variable is not set. Durations in seconds or like 30s, 10m, 7d; lists comma-separated "
        "(TOML: arrays):"
    )
    return (
        textwrap.fill(intro, 100)
        + "\n"
        + "\n".join(lines)
        + "\n\n[[sources]] and [[webhooks]] are tables of the TOML file (README.md, Configuration)."
    )


def _shown(value: object) -> str:
    if value in (None, PydanticUndefined, "", []):
        return "-"
    if isinstance(value, float):  # every float setting is a duration in seconds
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if value >= size and value % size == 0:
                return f"{value / size:g}{unit}"
        return f"{value:g}s"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


# --- commands without a daemon ------------------------------------------------------------------


def _run(args: argparse.Namespace) -> int:
    from cookie_supervisor import app, logs

    settings = load_settings(args.config)
    preflight(settings)
    logs.setup(settings.log_format, settings.log_level)
    return asyncio.run(app.serve(settings))


def _version(args: argparse.Namespace) -> int:
    print(f"cookie-supervisor {__version__}")
    return EXIT_OK


def _classify(args: argparse.Namespace) -> int:
    print(describe(classify(" ".join(args.text))))
    return EXIT_OK


# Epoch seconds in the inspect report, shown with their ISO time and distance from now.
_TIME_KEYS = ("mtime", "login_expires_at", "inspected_at")


def _inspect(args: argparse.Namespace) -> int:
    report = cookiefile.inspect(args.file, time.time())
    view = {k: v for k, v in asdict(report).items() if k != "fingerprint"}
    view["path"] = str(report.path)
    view["valid"] = report.valid
    view["secure_permissions"] = report.secure_permissions
    view["mode"] = oct(report.mode) if report.mode is not None else None
    problem = report.problem()
    view["problem"] = problem.value if problem else None
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        now = time.time()
        width = max(map(len, view))
        for key, value in view.items():
            if key in _TIME_KEYS and isinstance(value, int | float):
                shown = f"{value:.0f}  ({when(value, now)})"
            elif isinstance(value, list | tuple):
                shown = ", ".join(value)
            else:
                shown = value
            print(f"{key:<{width}}  {shown}")
    if problem is None and report.os_error is None:
        return EXIT_OK
    if problem is None:  # the OS would not let us read it (EMFILE, EIO): no verdict
        return EXIT_USAGE
    return EXIT_PROBLEM if problem.fixable else EXIT_USAGE


def _check(args: argparse.Namespace) -> int:
    """A monitoring plugin: whatever goes wrong short of a verdict is UNKNOWN (exit 3), said on
    stdout (what a monitoring system shows) and stderr."""
    try:
        return _check_verdicts(args) if not args.local else _check_local(args)
    except (ConfigError, DaemonError) as exc:
        why = f"configuration error: {exc}" if isinstance(exc, ConfigError) else str(exc)
        if args.json:
            print(json.dumps({"state": "unknown", "error": why}))
        else:
            print(f"UNKNOWN: {why}")
        print(f"cookie-supervisor: {why}", file=sys.stderr)
        return EXIT_UNKNOWN


def _check_verdicts(args: argparse.Namespace) -> int:
    daemon = _daemon(args)
    states: Any
    if args.source:
        states = [daemon.get("/api/cookies/cookies-status", source=args.source)]
    else:
        states = daemon.get("/api/cookies/sources").get("sources")
    if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
        raise DaemonUnreachable(f"{daemon.shown} answered without a list of sources")
    verdicts = [verdict(s) for s in states]
    if args.json:
        print(json.dumps([v.as_dict() for v in verdicts], indent=2))
    else:
        for v in verdicts:
            print(v.line())
    return worst(v.exit_code for v in verdicts)


def worst(codes: Iterable[int]) -> int:
    """The exit code of several checks: CRITICAL over UNKNOWN over WARNING over OK."""
    return max(codes, key=_SEVERITY.__getitem__, default=EXIT_OK)


def _check_local(args: argparse.Namespace) -> int:
    from cookie_supervisor import logs
    from cookie_supervisor.validator import Validator

    settings = load_settings(args.config, env_file_values(getattr(args, "env_file", None)))
    logs.setup(settings.log_format, "warning")
    source = _local_source(settings, args.source)
    # The validator alone: no Redis client, no decision core, no state file. What it sees is
    # handed to nobody, so a mere check never enqueues a refresh job or writes the daemon's state.
    result = asyncio.run(Validator(settings).validate(source, "cli"))
    answer = {"source": source.name, **result.as_dict()}
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(_validation_line(answer))
    if result.ok:
        return EXIT_OK
    if result.read_error:  # this process could not read the jar: no verdict
        return EXIT_UNKNOWN
    return EXIT_PROBLEM if result.reason and result.reason.fixable else EXIT_USAGE


def _local_source(settings: Settings, name: str | None) -> SourceSettings:
    sources = {cfg.name: cfg for cfg in settings.all_sources()}
    if name is None:
        return next(iter(sources.values()))
    if name not in sources:
        raise ConfigError(f"--source: unknown source {name!r} (known: {', '.join(sources)})")
    return sources[name]


# --- commands that ask the daemon ---------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    daemon = _daemon(args)
    if args.source:
        sources = [daemon.get("/api/cookies/cookies-status", source=args.source)]
    else:
        sources = daemon.get("/api/cookies/sources").get("sources") or []
    queue = daemon.get("/api/cookies/queue-status", ok_statuses=(503,))
    redis_up = bool(queue.get("redis_up"))
    if args.json:
        view = {"daemon": daemon.shown, "queue": queue, "redis_up": redis_up, "sources": sources}
        print(json.dumps(view, indent=2))
    else:
        now = time.time()
        print(_queue_line(daemon.shown, queue))
        for s in sources:
            print("\n".join(source_lines(s, now)))
    return EXIT_OK if redis_up else EXIT_PROBLEM


def _validate(args: argparse.Namespace) -> int:
    daemon = _daemon(args)
    answer = daemon.post(
        "/api/cookies/validate", None, timeout=VALIDATE_TIMEOUT, source=args.source
    )
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(_validation_line(answer))
    if answer.get("ok"):
        return EXIT_OK
    return EXIT_PROBLEM if _fixable(answer) else EXIT_USAGE


def _trigger(args: argparse.Namespace) -> int:
    daemon = _daemon(args)
    # `origin` tells the daemon a person asked (the API ignores keys it does not know).
    body: dict[str, Any] = {"reason": args.reason, "force": args.force, "origin": "cli"}
    if args.source:
        body["source"] = args.source
    if args.error:
        body["error"] = args.error
    answer = daemon.post("/api/cookies/trigger-refresh", body)
    state = answer.get("state")
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        job = f" (job {answer['job_id']})" if answer.get("job_id") else ""
        retry = f"; retry in {answer['retry_after']:g} s" if answer.get("retry_after") else ""
        # The daemon's own words: it keeps running, so what it promises (e.g. to enqueue the
        # refresh once Redis is back) is its promise, not this short-lived process's.
        reason = answer.get("classified_as") or answer.get("reason", args.reason)
        print(
            f"{answer.get('source', '?')}: {state} {reason}{job}: "
            f"daemon says: {answer.get('message', '')}{retry}"
        )
    if state in ("enqueued", "coalesced"):
        return EXIT_OK
    return EXIT_USAGE if state == "ignored" else EXIT_PROBLEM


# --- the daemon's address ------------------------------------------------------------------------


def _daemon(args: argparse.Namespace) -> DaemonClient:
    """The running daemon's API, found where the service's own settings say it listens."""
    config = getattr(args, "config", None)
    url, token = find_daemon(args.url, args.env_file, os.environ, config)
    return DaemonClient(
        url,
        token,
        timeout=QUICK_TIMEOUT,
        user_agent=f"cookie-supervisor/{__version__}",
        auth_hint=token_hint(token),
    )


# --- what the daemon said, for people ------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    source: str
    ok: bool
    reason: str | None
    fixable: bool
    detail: str

    unknown: bool = False  # no verdict on the cookies (the daemon could not read the file)

    @property
    def exit_code(self) -> int:
        if self.ok:
            return EXIT_OK
        if self.unknown:
            return EXIT_UNKNOWN
        return EXIT_PROBLEM if self.fixable else EXIT_USAGE

    def line(self) -> str:
        head = "OK" if self.ok else f"{'UNKNOWN' if self.unknown else 'FAIL'} {self.reason}"
        return f"{self.source}: {head}: {self.detail}" if self.detail else f"{self.source}: {head}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "ok": self.ok,
            "reason": self.reason,
            "fixable": self.fixable,
            "detail": self.detail,
            "unknown": self.unknown,
        }


def verdict(status: Mapping[str, Any], now: float | None = None) -> Verdict:
    """One source's verdict as the daemon serves it (`views.verdict`, key `verdict` of its
    status), with what the status says around it. A status without one (a daemon older than
    this command) is no verdict: UNKNOWN."""
    now = time.time() if now is None else now
    name = str(status.get("source", "?"))
    last = status.get("last_validation") or {}
    refresh = status.get("refresh") or {}
    notes = [str(status.get("message") or "")]
    if last:
        notes.append(f"last validation {when(last.get('at'), now, iso=False)}")
    if refresh.get("pending_job"):
        notes.append(f"refresh job {refresh['pending_job']} pending")
    elif refresh.get("owed"):
        notes.append(f"refresh owed ({refresh['owed']})")
    detail = "; ".join(n for n in notes if n)
    served = status.get("verdict")
    if not isinstance(served, Mapping):
        return Verdict(name, False, "no verdict served", False, detail, True)
    reason = served.get("reason")
    return Verdict(
        name,
        served.get("ok") is True,
        None if reason is None else str(reason),
        served.get("fixable") is True,
        detail,
        served.get("unknown") is True,
    )


def _fixable(answer: Mapping[str, Any]) -> bool:
    if "fixable" in answer:
        return bool(answer["fixable"])
    try:
        return Reason(str(answer.get("reason"))).fixable
    except ValueError:
        return False


def _validation_line(answer: Mapping[str, Any]) -> str:
    verdict = "OK" if answer.get("ok") else f"FAIL {answer.get('reason')}"
    duration = answer.get("duration_seconds")
    took = f" in {duration:.2f}s" if isinstance(duration, int | float) else ""
    offline = " (offline check only)" if answer.get("offline") and answer.get("ok") else ""
    message = answer.get("message") or ""
    return f"{answer.get('source', '?')}: {verdict}{took}{offline} {message}".rstrip()


def _queue_line(url: str, queue: Mapping[str, Any]) -> str:
    if not queue.get("redis_up"):
        return f"daemon {url}: Redis down ({queue.get('error', 'unavailable')})"
    counts = queue.get("status") or {}
    shown = " ".join(f"{k}={v}" for k, v in counts.items() if k != "total")
    return f"daemon {url}: queue {queue.get('queue', '?')}: {shown}"


def source_lines(s: Mapping[str, Any], now: float) -> list[str]:
    """A source's status as a few aligned lines; keys the daemon did not send show as '-'."""
    last = s.get("last_validation") or {}
    refresh = s.get("refresh") or {}
    if last:
        outcome = "ok" if last.get("ok") else f"FAIL {last.get('reason')}"
        took = last.get("duration_seconds")
        took_text = f", {took:.2f}s" if isinstance(took, int | float) else ""
        message = f", {last['message']}" if last.get("message") else ""
        validation = f"{outcome} {when(last.get('at'), now)}{took_text}{message}"
    else:
        validation = "none yet"
    owed = refresh.get("owed") or "-"
    ratio = refresh.get("success_ratio")
    rows = [
        ("file", f"{s.get('path', '-')}: {s.get('message') or '-'}"),
        ("logged in", _yes_no(s.get("logged_in"))),
        ("file problem", s.get("problem") or "-"),
        ("last validation", validation),
        ("diagnosis", s.get("diagnosis") or "-"),
        ("login expires", when(s.get("login_expires_at"), now)),
        ("session since", when(s.get("session_changed_at"), now)),
        ("rotation due", when(s.get("rotation_due_at"), now)),
        ("pending job", refresh.get("pending_job") or "-"),
        ("refresh owed", owed),
        ("refresh needed", refresh.get("needed") or "-"),
        ("verifying job", refresh.get("verifying_job") or "-"),
        ("failures", str(refresh.get("consecutive_failures", "-"))),
        ("backoff until", when(refresh.get("backoff_until"), now)),
        ("success ratio", f"{ratio:.2f}" if isinstance(ratio, int | float) else "-"),
    ]
    width = max(len(k) for k, _ in rows)
    return [f"{s.get('source', '?')}:"] + [f"  {k:<{width}}  {v}" for k, v in rows]


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


def when(epoch: object, now: float, *, iso: bool = True) -> str:
    """`2026-05-24T10:00:00Z (in 180 d)` for an epoch second; '-' for none."""
    if not isinstance(epoch, int | float) or isinstance(epoch, bool):
        return "-"
    relative = relative_time(epoch - now)
    if not iso:
        return relative
    stamp = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{stamp} ({relative})"


def relative_time(delta: float) -> str:
    """`in 180 d`, `3 h ago`, `now`: the largest unit that keeps the number readable."""
    size = abs(delta)
    if size < 1:
        return "now"
    if size < 90:
        amount, unit = round(size), "s"
    elif size < 90 * 60:
        amount, unit = round(size / 60), "min"
    elif size < 48 * 3600:
        amount, unit = round(size / 3600), "h"
    else:
        amount, unit = round(size / 86400), "d"
    return f"in {amount} {unit}" if delta > 0 else f"{amount} {unit} ago"
