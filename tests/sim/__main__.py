"""`python -m tests.sim [-n N] [-j JOBS] [--seed S] [--replay SEED [--keep I,J,...]]`: run seeded
worlds, check the promises, print each broken promise's first seed with a shrunk trace and the one
command that replays it (`--replay SEED --keep ...`: the seed's world with only the kept actions),
the economy, and last `scenarios=N violations=V`."""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time
from collections import Counter
from typing import Any

from tests.sim.promises import Economy
from tests.sim.regression import REGRESSIONS
from tests.sim.scenarios import (
    DAY,
    generate,
    replay_command,
    replay_text,
    run,
    shrink_keep,
    summarize,
)

BASE_SEED = 1_000_000


def _one(seed: int) -> tuple[int, float, list[tuple[str, float, str]], Economy, int, float]:
    cpu = time.process_time()
    sc = generate(seed)
    r = run(sc)
    found = [(v.promise, v.at, v.message) for v in r.violations]
    return seed, sc.span, found, r.economy, r.steps, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.sim")
    ap.add_argument("-n", "--scenarios", type=int, default=10_000)
    ap.add_argument("-j", "--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=BASE_SEED, help="first seed")
    ap.add_argument("--replay", type=int, help="replay one seed with its trace")
    ap.add_argument(
        "--keep",
        type=_indices,
        help="with --replay: only these actions of the seed's script (a shrunk trace), e.g. 0,3,7",
    )
    ap.add_argument(
        "--shrink", action="store_true", help="shrink every broken promise's first seed"
    )
    args = ap.parse_args(argv)
    if args.replay is not None:
        sc = generate(args.replay)
        r = run(sc, keep=args.keep, trace=True)
        print(sc.describe(args.keep))
        print("\n".join(r.trace))
        for v in r.violations:
            print(f"VIOLATION {v.promise} at {v.at:.1f}s: {v.message}")
        return 1 if r.violations else 0
    started = time.monotonic()
    # longest worlds first, a few at a time: no worker idles while another runs a chunk of
    # month-long worlds at the end
    seeds = sorted(range(args.seed, args.seed + args.scenarios), key=lambda s: -generate(s).span)
    with multiprocessing.Pool(args.jobs) as pool:
        results = sorted(pool.imap_unordered(_one, seeds, chunksize=4))
    elapsed = time.monotonic() - started
    spans = [r[1] for r in results]
    first: dict[str, tuple[float, int, str]] = {}
    per: Counter[str] = Counter()
    bad = 0
    for seed, _, found, *_ in results:
        bad += bool(found)
        for promise, at, message in found:
            per[promise] += 1
            # the quickest world to break it is the one shrunk and shown
            if promise not in first or at < first[promise][0]:
                first[promise] = (at, seed, message)
    for promise, (_, seed, message) in sorted(first.items()):
        print(f"--- {promise} broken in {per[promise]} scenarios; e.g. seed {seed}: {message}")
        sc = generate(seed)
        kept = shrink_keep(sc, promise, budget=40)
        print(
            f"    replay: {replay_command(seed, kept)}  (shrunk to "
            f"{len(kept)} of {len(sc.actions)} actions)"
        )
        print(_indent(replay_text(sc, promise, keep=kept, trace_lines=25)))
    _print_mix(spans, elapsed, sum(r[4] for r in results), sum(r[5] for r in results), args.jobs)
    _print_economy([r[3] for r in results])
    _print_known()
    print(f"scenarios={len(results)} violations={bad}")
    return 1 if bad else 0


def _indices(text: str) -> frozenset[int]:
    return frozenset(int(i) for i in text.split(",") if i.strip())


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _print_mix(spans: list[float], elapsed: float, steps: int, cpu: float, jobs: int) -> None:
    short = sum(s <= 7200 for s in spans)
    mid = sum(7200 < s <= 2 * DAY for s in spans)
    long = len(spans) - short - mid
    days = sum(spans) / DAY
    print(
        f"mix: {short} of 10 min-2 h, {mid} of 2 h-2 days, {long} of 2-30 days "
        f"({days:.0f} simulated days, longest {max(spans) / DAY:.1f} days); "
        f"{steps} core steps in {elapsed:.1f}s wall on {jobs} workers ({cpu:.1f}s CPU)"
    )


def _fmt(x: float, unit: str = "") -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}{unit}"


def _print_economy(econ: list[Economy]) -> None:
    s = summarize(econ)
    bound = 1 + math.ceil(math.log2(1 + DAY / 1800)) + DAY / DAY
    print(
        f"economy: incidents={s['incidents']:.0f} repaired={s['repaired']:.0f} "
        f"logins/repair={_fmt(s['logins_per_repair'])} (target <= 1.1) "
        f"repair median={_fmt(s['repair_median'], 's')} p99={_fmt(s['repair_p99'], 's')}"
    )
    print(
        f"economy: jobs/day behind a flagged IP={_fmt(s['flagged_jobs_per_day'])} "
        f"(needed={_fmt(s['flagged_needed_per_day'])}: the jar broken or its session dead; "
        f"avoidable={_fmt(s['flagged_avoidable_per_day'])}, target 0; "
        f"{s['flagged_days']:.1f} flagged days) jobs/day while uploads keep failing="
        f"{_fmt(s['failing_jobs_per_day'])} (P1 bound for the first day at the defaults: "
        f"{bound:.0f}; {s['failing_days']:.1f} failing days)"
    )


def _print_known() -> None:
    results: dict[str, Any] = {}
    for d, (scenario, promise) in sorted(REGRESSIONS.items()):
        r = run(scenario())
        results[d] = promise in {v.promise for v in r.violations}
    still = [d for d, broken in results.items() if broken]
    fixed = [d for d, broken in results.items() if not broken]
    print(
        f"regressions still broken: {', '.join(still) or 'none'}; fixed: {', '.join(fixed) or 'none'}"
    )


if __name__ == "__main__":
    sys.exit(main())
