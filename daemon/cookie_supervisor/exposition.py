"""The Prometheus text exposition, written by hand: label strings built once per series, each
family rendered again only when one of its values changed.

With 100 sources and every counter present from the start, prometheus-client's `generate_latest`
took ~120 ms a scrape on the reference machine against ~2.5 ms for this renderer (README,
"Performance"; tests/benchmarks/bench_metrics.py). The names, help texts and labels of the
daemon's metrics are `metrics.py`'s; this module only knows the format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def labels_text(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass(slots=True)
class Child:
    family: Family
    key: tuple[str, ...]

    def inc(self, amount: float = 1.0) -> None:
        self.family.inc(self.key, amount)

    def set(self, value: float) -> None:
        self.family.values[self.key] = float(value)
        self.family.text = None


@dataclass(slots=True)
class Family:
    """One counter or gauge family whose series are written by the daemon (not views)."""

    name: str
    help: str
    kind: str
    labelnames: tuple[str, ...]
    values: dict[tuple[str, ...], float] = field(default_factory=dict)
    text: str | None = None  # the rendered family, until a value changes
    _heads: dict[tuple[str, ...], str] = field(default_factory=dict)

    def labels(self, *values: str) -> Child:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
        return Child(self, tuple(str(v) for v in values))

    def inc(self, key: tuple[str, ...], amount: float = 1.0) -> None:
        self.values[key] = self.values.get(key, 0.0) + amount
        self.text = None

    def touch(self, *values: str) -> None:
        """Create a series at 0, so `increase()` sees its first event after a restart."""
        self.values.setdefault(tuple(values), 0.0)
        self.text = None

    def remove(self, *values: str) -> None:
        self.values.pop(tuple(values), None)
        self.text = None

    def value(self, *values: str) -> float | None:
        return self.values.get(tuple(values))

    def render(self, out: list[str]) -> None:
        # Most families change far less often than they are scraped: render on change only.
        if self.text is None:
            heads, sample = self._heads, self.name + ("_total" if self.kind == "counter" else "")
            lines = [f"# HELP {sample} {self.help}\n# TYPE {sample} {self.kind}\n"]
            for key, value in self.values.items():
                head = heads.get(key)
                if head is None:
                    head = heads[key] = sample + labels_text(self.labelnames, key)
                lines.append(f"{head} {number(value)}\n")
            self.text = "".join(lines)
        out.append(self.text)


@dataclass(slots=True)
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    series: dict[str, list[float]] = field(default_factory=dict)  # source → counts…, sum, count
    text: str | None = None

    def observe(self, source: str, value: float) -> None:
        self.text = None
        row = self.series.setdefault(source, [0.0] * (len(self.buckets) + 2))
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                row[i] += 1
        row[-2] += value
        row[-1] += 1

    def touch(self, source: str) -> None:
        self.series.setdefault(source, [0.0] * (len(self.buckets) + 2))
        self.text = None

    def render(self, out: list[str]) -> None:
        if self.text is None:
            lines: list[str] = []
            self._render(lines)
            self.text = "".join(lines)
        out.append(self.text)

    def _render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}\n# TYPE {self.name} histogram\n")
        les = [number(b) for b in self.buckets]
        for source, row in self.series.items():
            s = escape(source)
            for le, n in zip(les, row, strict=False):
                out.append(f'{self.name}_bucket{{source="{s}",le="{le}"}} {number(n)}\n')
            out.append(f'{self.name}_bucket{{source="{s}",le="+Inf"}} {number(row[-1])}\n')
            out.append(f'{self.name}_count{{source="{s}"}} {number(row[-1])}\n')
            out.append(f'{self.name}_sum{{source="{s}"}} {number(row[-2])}\n')


class Gauges:
    """Gauges read at scrape time (views of state), written straight out under `namespace`."""

    def __init__(self, out: list[str], namespace: str) -> None:
        self.out = out
        self.namespace = namespace

    def head(self, name: str, doc: str) -> None:
        full = f"{self.namespace}_{name}"
        self.out.append(f"# HELP {full} {doc}\n# TYPE {full} gauge\n")

    def sample(self, name: str, labels: str, value: float) -> None:
        self.out.append(f"{self.namespace}_{name}{labels} {number(value)}\n")
