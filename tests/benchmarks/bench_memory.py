"""Memory of one inspection of a jar at the size limit, against the daemon's idle RSS.

    .venv/bin/python tests/benchmarks/bench_memory.py

Each jar is inspected in a fresh child process that first imports the whole daemon
(`cookie_supervisor.app`: uvicorn, redis, APScheduler, pydantic, prometheus-client), so
"idle" is what the daemon's code costs before any jar is read. The peak is VmHWM after resetting
it (/proc/self/clear_refs), so it is the inspection's own high-water mark. The target is a peak of
at most 2x idle for any jar the parser accepts to read (MAX_BYTES).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "daemon"))

from cookie_supervisor.cookiefile import MAX_BYTES  # noqa: E402

FUTURE = int(time.time()) + 180 * 86400
HEADER = "# Netscape HTTP Cookie File\n"

_CHILD = """
import json, sys, time
sys.path.insert(0, {daemon!r})
import cookie_supervisor.app  # the daemon's own footprint
from cookie_supervisor.cookiefile import inspect

def kb(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

inspect({warm!r}, time.time())  # first-call costs (regex, hashlib) are part of idle
idle = kb("VmRSS:")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset VmHWM to the current RSS
t0 = time.perf_counter()
r = inspect({jar!r}, time.time())
seconds = time.perf_counter() - t0
print(json.dumps(dict(idle=idle, peak=kb("VmHWM:"), after=kb("VmRSS:"), seconds=seconds,
                      cookies=r.cookies, malformed=r.malformed_lines, error=r.error)))
"""


def fill(path: Path, line: Callable[[int], str]) -> None:
    """Cookie lines up to exactly the size limit."""
    size = len(HEADER)
    with path.open("w") as fh:
        fh.write(HEADER)
        i = 0
        while size + len(text := line(i)) <= MAX_BYTES:
            fh.write(text)
            size += len(text)
            i += 1


def jars(d: Path) -> dict[str, Path]:
    shapes: dict[str, Callable[[int], str]] = {
        # What a browser export looks like, only far longer.
        "realistic lines (200 B)": lambda i: (
            f".youtube.com\tTRUE\t/\tTRUE\t{FUTURE}\tCOOKIE{i}\t{'x' * 150}\n"
        ),
        # The most distinct cookies 16 MiB can hold: the worst case for the count.
        "tiny distinct cookies": lambda i: f".a\tTRUE\t/\tTRUE\t0\t{i:x}\tv\n",
        "comments only": lambda i: f"# comment {i}\n",
        "malformed lines": lambda i: f"not a cookie {i}\n",
    }
    out = {}
    for name, line in shapes.items():
        out[name] = d / (name.replace(" ", "_") + ".txt")
        fill(out[name], line)
    out["one 16 MiB value"] = d / "huge_value.txt"
    prefix = HEADER + f".youtube.com\tTRUE\t/\tTRUE\t{FUTURE}\tLOGIN_INFO\t"
    out["one 16 MiB value"].write_text(prefix + "v" * (MAX_BYTES - len(prefix) - 1) + "\n")
    return out


def measure(jar: Path, warm: Path) -> dict[str, float]:
    code = _CHILD.format(daemon=str(ROOT / "daemon"), jar=str(jar), warm=str(warm))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        warm = d / "warm.txt"
        warm.write_text(HEADER + f".youtube.com\tTRUE\t/\tTRUE\t{FUTURE}\tSID\tv\n")
        print(f"jar size limit {MAX_BYTES / 2**20:.0f} MiB; RSS of a process holding the daemon")
        print(
            f"{'jar':<26}{'idle MB':>9}{'peak MB':>9}{'peak/idle':>11}{'after MB':>10}"
            f"{'seconds':>9}{'cookies':>9}"
        )
        worst = 0.0
        for name, jar in jars(d).items():
            r = measure(jar, warm)
            ratio = r["peak"] / r["idle"]
            worst = max(worst, ratio)
            print(
                f"{name:<26}{r['idle'] / 1024:>9.1f}{r['peak'] / 1024:>9.1f}{ratio:>11.2f}"
                f"{r['after'] / 1024:>10.1f}{r['seconds']:>9.2f}{r['cookies']:>9}"
            )
        print(f"worst peak/idle {worst:.2f} (target <= 2.00)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
