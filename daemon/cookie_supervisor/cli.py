"""`cookie-supervisor run | check | inspect | trigger | status | classify | version`.

Exit codes: 0 fine, 1 a problem found (check: fixable failure; trigger: Redis down), 2 bad usage,
bad configuration, or (check) a failure fresh cookies cannot fix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from cookie_supervisor import __version__, cookiefile
from cookie_supervisor.classify import classify, describe
from cookie_supervisor.config import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from cookie_supervisor.supervisor import Supervisor

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except ConfigError as exc:
        print(f"cookie-supervisor: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cookie-supervisor", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"cookie-supervisor {__version__}")
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    def command(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        return sp

    def with_config(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--config", type=Path, help="TOML file (default: $COOKIE_SUPERVISOR_CONFIG)"
        )

    with_config(command("run", _run, "run the daemon in the foreground"))
    sp = command("check", _check, "run one validation now; exit 0 ok, 1 fixable, 2 other failure")
    with_config(sp)
    sp.add_argument("--source", default=None)
    sp.add_argument("--json", action="store_true")
    sp = command("inspect", _inspect, "report on a cookie file (never prints a cookie value)")
    sp.add_argument("file", type=Path)
    sp.add_argument("--json", action="store_true")
    sp = command("trigger", _trigger, "ask for a cookie refresh straight through Redis")
    with_config(sp)
    sp.add_argument("--reason", required=True)
    sp.add_argument("--source", default=None)
    sp.add_argument("--error", default=None, help="the failure text, classified like the API does")
    sp.add_argument(
        "--force", action="store_true", help="bypass the cooldown (never a pending job)"
    )
    sp = command("status", _status, "queue counts and the state of every source")
    with_config(sp)
    sp.add_argument("--json", action="store_true")
    sp = command("classify", _classify, "classify a yt-dlp error text")
    sp.add_argument("text", nargs="+")
    command(
        "version",
        lambda a: print(f"cookie-supervisor {__version__}") or EXIT_OK,
        "print the version",
    )
    return p


def _run(args: argparse.Namespace) -> int:
    from cookie_supervisor import app, logs

    settings = load_settings(args.config)
    logs.setup(settings.log_format, settings.log_level)
    return asyncio.run(app.serve(settings))


def _inspect(args: argparse.Namespace) -> int:
    report = cookiefile.inspect(args.file)
    view = {k: v for k, v in asdict(report).items() if k != "fingerprint"}
    view["path"] = str(report.path)
    view["valid"] = report.valid
    view["secure_permissions"] = report.secure_permissions
    view["mode"] = oct(report.mode) if report.mode is not None else None
    view["problem"] = p.value if (p := report.problem()) else None
    if args.json:
        print(json.dumps(view, indent=2))
    else:
        width = max(map(len, view))
        for key, value in view.items():
            shown = ", ".join(value) if isinstance(value, list | tuple) else value
            print(f"{key:<{width}}  {shown}")
    return EXIT_OK if report.valid else EXIT_PROBLEM


def _classify(args: argparse.Namespace) -> int:
    print(describe(classify(" ".join(args.text))))
    return EXIT_OK


def _check(args: argparse.Namespace) -> int:
    async def check(sup: Supervisor, settings: Settings) -> int:
        source = _source(sup, args.source)
        await sup.inspect(source, initial=True)
        result = await sup.run_validation(source, "cli")
        if args.json:
            print(json.dumps({"source": source, **result.as_dict()}, indent=2))
        else:
            verdict = "OK" if result.ok else f"FAIL {result.reason}"
            print(f"{source}: {verdict} in {result.duration:.2f}s {result.message}".rstrip())
        if result.ok:
            return EXIT_OK
        return EXIT_PROBLEM if result.reason and result.reason.fixable else EXIT_USAGE

    return _with_supervisor(args, check)


def _trigger(args: argparse.Namespace) -> int:
    async def trigger(sup: Supervisor, settings: Settings) -> int:
        await sup.poll_queue()
        outcome = await sup.request(
            _source(sup, args.source), args.reason, origin="cli", error=args.error, force=args.force
        )
        print(
            json.dumps(
                {
                    "state": outcome.state,
                    "source": outcome.source,
                    "reason": outcome.reason.value,
                    "job_id": outcome.job_id,
                    "message": outcome.message,
                }
            )
        )
        return EXIT_PROBLEM if outcome.state == "deferred" else EXIT_OK

    return _with_supervisor(args, trigger)


def _status(args: argparse.Namespace) -> int:
    async def status(sup: Supervisor, settings: Settings) -> int:
        for name in sup.sources:
            await sup.inspect(name, initial=True)
        await sup.poll_queue()
        sources = [sup.status(name) for name in sup.sources]
        if args.json:
            view = {
                "queue": settings.queue,
                "redis_up": sup.redis_up,
                "counts": sup.counts,
                "sources": sources,
            }
            print(json.dumps(view, indent=2))
        else:
            counts = " ".join(f"{k}={v}" for k, v in (sup.counts or {}).items()) or "redis down"
            print(f"queue {settings.queue}: {counts}")
            for s in sources:
                pending = s["refresh"]["pending_job"] or "-"
                print(
                    f"  {s['source']}: {s['message']}; logged_in={s['logged_in']} "
                    f"pending_job={pending} path={s['path']}"
                )
        return EXIT_OK if sup.redis_up else EXIT_PROBLEM

    return _with_supervisor(args, status)


def _with_supervisor(
    args: argparse.Namespace,
    body: Callable[[Supervisor, Settings], Awaitable[int]],
) -> int:
    """Run `body` with a supervisor that has no watcher, no timers running and no HTTP server."""
    from cookie_supervisor import app, logs

    settings = load_settings(args.config)
    logs.setup(settings.log_format, "warning")

    async def go() -> int:
        client = app.connect_redis(settings)
        supervisor = app.build_supervisor(settings, client)
        try:
            return await body(supervisor, settings)
        finally:
            await supervisor.queue.aclose()
            await client.aclose()

    # redis-py connects lazily: `check` never touches Redis, so it needs none.
    return asyncio.run(go())


def _source(sup: Supervisor, name: str | None) -> str:
    if name is None:
        return next(iter(sup.sources))
    if name not in sup.sources:
        raise ConfigError(f"--source: unknown source {name!r} (known: {', '.join(sup.sources)})")
    return name
