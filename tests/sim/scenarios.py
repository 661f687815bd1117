"""Scenarios: a seed becomes a world and a script of what happens in it; a run checks promises.

A scenario is data (configs, writer, worker clocks, a list of timed actions), so a violation can
be replayed from its seed alone, and shrunk by dropping actions while the same promise still
breaks. Everything random inside the world comes from the seed too.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from tests.sim.promises import Economy, Promises, Violation
from tests.sim.world import AMBIGUOUS_TEXTS, SOURCE, T0, DaemonConfig, Worker, World

DAY = 86400.0
Action = tuple[float, str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Scenario:
    seed: int
    span: float
    configs: tuple[DaemonConfig, ...] = (DaemonConfig(),)
    writer: str = "atomic"
    stall_max: float = 5.0
    skews: tuple[float, ...] = (0.0,)
    session_age: float = 3600.0
    actions: tuple[Action, ...] = ()
    name: str = ""

    def describe(self, keep: frozenset[int] | None = None) -> str:
        lines = [
            f"Scenario(seed={self.seed}, span={self.span:.0f}s, writer={self.writer}, "
            f"skews={self.skews}, daemons={len(self.configs)})",
        ]
        lines += [f"  config d{i}: {c}" for i, c in enumerate(self.configs)]
        lines += [
            f"  {k:3d} {t:10.1f} {kind} {args}"
            for k, (t, kind, args) in enumerate(self.actions)
            if keep is None or k in keep
        ]
        return "\n".join(lines)


@dataclass(slots=True)
class Result:
    scenario: Scenario
    violations: list[Violation]
    economy: Economy
    steps: int
    trace: list[str] = field(default_factory=list)


# --- generation ---------------------------------------------------------------------------------

_KINDS: tuple[tuple[str, float], ...] = (
    ("session", 0.14),
    ("remove", 0.04),
    ("corrupt", 0.03),
    ("ip_flagged", 0.08),
    ("po_token", 0.04),
    ("restricted", 0.04),
    ("rate_limited", 0.05),
    ("js_failing", 0.03),
    ("worker", 0.10),
    ("reports", 0.12),
    ("person", 0.06),
    ("restart", 0.06),
    ("redis_down", 0.05),
    ("flush", 0.02),
    ("clock", 0.04),
    ("old_jar", 0.04),
    ("rewrite", 0.06),
    ("upload", 0.03),
)


def span_of(rng: random.Random) -> float:
    """The mix: 70 % 10 min-2 h, 25 % 2 h-2 days, 5 % 2-30 days."""
    r = rng.random()
    if r < 0.7:
        return rng.uniform(600, 7200)
    if r < 0.95:
        return rng.uniform(7200, 2 * DAY)
    return rng.uniform(2 * DAY, 30 * DAY)


def config_of(rng: random.Random, span: float) -> DaemonConfig:
    # Validating every 5 minutes for a month is 8640 validations: long worlds validate hourly.
    every = (0.0, 300.0, 1800.0, 1800.0) if span <= 2 * DAY else (0.0, 1800.0, 3600.0)
    return DaemonConfig(
        validate_every=rng.choice(every),
        account_check=rng.random() < 0.8,
        offline_only=rng.random() < 0.1,
        refresh_cooldown=rng.choice((5.0, 60.0, 600.0, 600.0)),
        refresh_backoff=rng.choice((3.0, 60.0, 1800.0, 1800.0)),
        refresh_backoff_max=rng.choice((600.0, 86400.0, 86400.0)),
        upload_timeout=rng.choice((120.0, 600.0)),
        rotate_after=rng.choice((DAY, 7 * DAY, 7 * DAY)),
    )


def generate(seed: int) -> Scenario:
    rng = random.Random(seed)
    span = span_of(rng)
    n = rng.choices((1, 2, 3), (0.7, 0.2, 0.1))[0]
    configs = tuple(config_of(rng, span) for _ in range(n))
    skews = [rng.choice((0.0, 0.0, rng.uniform(-600, 600)))]
    if rng.random() < 0.15:
        skews.append(rng.uniform(-600, 600))
    count = min(60, rng.randint(3, 12) + int(span / 7200))
    kinds, weights = zip(*_KINDS, strict=True)
    actions: list[Action] = []
    for _ in range(count):
        t = rng.uniform(30, span)
        kind = rng.choices(kinds, weights)[0]
        actions += _action(rng, kind, t, span, n)
    actions.sort(key=lambda a: a[0])
    return Scenario(
        seed=seed,
        span=span,
        configs=configs,
        writer=rng.choice(("atomic", "atomic", "scp")),
        stall_max=rng.uniform(0.2, 5.0),
        skews=tuple(skews),
        session_age=rng.uniform(60, 6 * DAY),
        actions=tuple(actions),
    )


def _action(rng: random.Random, kind: str, t: float, span: float, n: int) -> list[Action]:
    d = rng.randrange(n)
    episode = rng.uniform(300, min(span, 3 * DAY))
    if kind == "session":
        return [(t, "session", (rng.choice(("rotated", "logged_out")),))]
    if kind in ("ip_flagged", "po_token", "restricted", "rate_limited", "js_failing"):
        on: list[Action] = [(t, "yt", (kind, True))]
        if kind == "ip_flagged" and rng.random() < 0.5:
            on.append((t, "yt", ("bot_wall_account", True)))
        return [*on, (t + episode, "yt", (kind, False))]
    if kind == "worker":
        mode = rng.choice(("new_ok", "new_ok", "same", "no_upload", "new_bad", "fail", "slow"))
        return [(t, "worker", (mode,)), (t + episode, "worker", ("new_ok",))]
    if kind == "reports":
        text = rng.choice(("backend", "backend", *AMBIGUOUS_TEXTS))
        return [(t, "reports", (d, rng.choice((1, 3, 20)), text, rng.choice(("report", "api"))))]
    if kind == "person":
        return [(t, "person", (d, rng.random() < 0.5, rng.choice(("api", "cli"))))]
    if kind == "restart":
        return [(t, "restart", (d, rng.uniform(1, 600), rng.random() < 0.5))]
    if kind == "redis_down":
        return [(t, "redis_down", (rng.uniform(5, 900), rng.random() < 0.5))]
    if kind == "clock":
        return [(t, "clock", (d, rng.choice((-3600.0, 3600.0, -600.0, 600.0))))]
    return [(t, kind, ())]


# --- running ------------------------------------------------------------------------------------


def run(
    sc: Scenario, *, keep: frozenset[int] | None = None, trace: bool = False, stop_at: str = ""
) -> Result:
    """Run `sc` (only the actions whose index is in `keep`, if given). `stop_at`: stop at the
    first violation of that promise (shrinking)."""
    w = World(sc.seed * 7919 + 17, writer=sc.writer, stall_max=sc.stall_max)
    w.tracing = trace
    p = Promises(w)
    w.workers = [Worker(skew=s) for s in sc.skews]
    for i, cfg in enumerate(sc.configs):
        w.configs[i] = cfg
    first = w.new_session()
    w.install(first, "atomic")
    w.jar.mtime = T0 - sc.session_age
    w.session_at[first] = T0 - sc.session_age
    for i in range(len(sc.configs)):
        w.at(T0 + 0.5 * i, None, lambda i=i: w.boot(i))
    for k, (t, kind, args) in enumerate(sc.actions):
        if keep is not None and k not in keep:
            continue
        w.at(T0 + t, None, lambda kind=kind, args=args: _apply(w, p, kind, args))

    def check() -> None:
        p.world_changed()
        p.check()

    if stop_at:
        end = T0 + sc.span
        while w.heap and w.heap[0][0] <= end and stop_at not in p.broken:
            w.run(min(end, w.heap[0][0]), check)
    else:
        w.run(T0 + sc.span, check)
    if stop_at not in p.broken:
        p.finish(T0 + sc.span)
    return Result(sc, p.violations, p.eco, w.steps, w.trace)


def _apply(w: World, p: Promises, kind: str, args: tuple[Any, ...]) -> None:
    w.note(f"ACTION {kind} {args}")
    yt = w.youtube
    if kind == "session":
        if w.jar.session is not None:
            yt.sessions[w.jar.session] = args[0]
    elif kind == "remove":
        if w.jar.exists and not w.writing:
            p.file_broken()
        w.remove()
    elif kind == "corrupt":
        if not w.writing:
            p.file_broken()
            w.write("<html>captive portal</html>\n", None, how="atomic", done=lambda: None)
    elif kind == "yt":
        setattr(yt, args[0], args[1])
        if args[0] == "ip_flagged" and not args[1]:
            yt.bot_wall_account = False
    elif kind == "worker":
        w.worker_mode = args[0]
    elif kind == "reports":
        idx, count, text, origin = args
        d = w.daemons.get(idx)
        if d is None or not d.alive:
            return
        if text == "backend":
            session = w.jar.session if w.jar.exists else None
            text = yt.backend_text(session)
            if not text:
                return  # downloads work: the backend reports nothing
        for i in range(count):
            w.later(
                0.05 * i,
                d,
                lambda: d.request("bot_detection", origin=origin, error=text, force=False),
            )
    elif kind == "person":
        idx, force, origin = args
        d = w.daemons.get(idx)
        if d is None or not d.alive:
            return
        answer = d.request("manual", origin=origin, error=None, force=force)
        p.person_answered(d, answer, force)
    elif kind == "restart":
        idx, down, kill = args
        d = w.daemons.get(idx)
        if d is not None and d.alive and kill:
            p.person_lost(idx)
        w.restart(idx, down, kill=kill)
    elif kind == "redis_down":
        down, empty = args
        w.redis.up = False
        w.redis.version += 1

        def back() -> None:
            if empty:
                w.redis.flush()
            w.redis.up = True
            w.redis.version += 1
            w.note(f"ACTION redis back (empty={empty})")
            for d in list(w.daemons.values()):  # their polls notice: Redis is a thing that changed
                if d.alive:
                    d.wake()

        w.later(down, None, back)
    elif kind == "flush":
        w.redis.flush()
    elif kind == "clock":
        w.clock_step(*args)
    elif kind == "old_jar":
        s = w.jar.session
        if s is not None and s > 1 and not w.writing:
            w.install(s - 1, "atomic")
    elif kind == "rewrite":
        w.rewrite_same()
    elif kind == "upload" and not w.writing:  # an operator uploads a fresh login by hand
        w.install(w.new_session(), args[0] if args else w.writer)


# --- shrinking ----------------------------------------------------------------------------------


def shrink(sc: Scenario, promise: str, budget: int = 120) -> Scenario:
    """The scenario with only the actions `shrink_keep` keeps."""
    kept = shrink_keep(sc, promise, budget)
    return replace(sc, actions=tuple(a for i, a in enumerate(sc.actions) if i in kept))


def replay_command(seed: int, keep: frozenset[int] | None = None) -> str:
    """The one command that replays a (shrunk) violation: the seed names the world and its
    whole script, `--keep` the actions the shrunk trace kept (by their index in the script)."""
    cmd = f"python -m tests.sim --replay {seed}"
    if keep is not None:
        cmd += " --keep " + (",".join(str(i) for i in sorted(keep)) or "''")
    return cmd


def shrink_keep(sc: Scenario, promise: str, budget: int = 120) -> frozenset[int]:
    """Drop actions while `promise` still breaks: halves first, then one at a time. Returns the
    indices of the actions kept (`run(sc, keep=...)` replays it; the world's randomness comes
    from the seed, so the same indices give the same run)."""
    actions = list(range(len(sc.actions)))
    tries = 0

    def breaks(kept: list[int]) -> bool:
        nonlocal tries
        tries += 1
        r = run(sc, keep=frozenset(kept), stop_at=promise)
        return any(v.promise == promise for v in r.violations)

    chunk = max(1, len(actions) // 2)
    while chunk >= 1 and tries < budget:
        i, changed = 0, False
        while i < len(actions) and tries < budget:
            trial = actions[:i] + actions[i + chunk :]
            if breaks(trial):
                actions, changed = trial, True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return frozenset(actions)


def replay_text(
    sc: Scenario, promise: str, *, keep: frozenset[int] | None = None, trace_lines: int = 60
) -> str:
    r = run(sc, keep=keep, trace=True, stop_at=promise)
    lines = [sc.describe(keep), "  --- trace (last lines before the violation) ---"]
    lines += ["  " + t for t in r.trace[-trace_lines:]]
    return "\n".join(lines)


# --- economy ------------------------------------------------------------------------------------


def per_day(count: int, days: float) -> float:
    return count / days if days else float("nan")


def summarize(results: list[Economy]) -> dict[str, float]:
    repaired = sum(e.repaired for e in results)
    logins = sum(e.logins_repaired for e in results)
    times = sorted(t for e in results for t in e.repair_times)
    flagged_days = sum(e.flagged_seconds for e in results) / DAY
    failing_days = sum(e.failing_seconds for e in results) / DAY
    return {
        "incidents": sum(e.incidents for e in results),
        "repaired": repaired,
        "logins_per_repair": logins / repaired if repaired else float("nan"),
        "repair_median": statistics.median(times) if times else float("nan"),
        "repair_p99": times[min(len(times) - 1, int(0.99 * len(times)))] if times else float("nan"),
        "flagged_days": flagged_days,
        "flagged_jobs_per_day": per_day(sum(e.flagged_jobs for e in results), flagged_days),
        "flagged_needed_per_day": per_day(sum(e.flagged_needed for e in results), flagged_days),
        "flagged_avoidable_per_day": per_day(
            sum(e.flagged_jobs - e.flagged_needed for e in results), flagged_days
        ),
        "failing_days": failing_days,
        "failing_jobs_per_day": sum(e.failing_jobs for e in results) / failing_days
        if failing_days
        else float("nan"),
    }


__all__ = [
    "SOURCE",
    "Result",
    "Scenario",
    "generate",
    "replay_command",
    "run",
    "shrink",
    "shrink_keep",
    "summarize",
]
