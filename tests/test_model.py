"""The shared vocabulary's names hold together with what carries them out: every counter and
histogram the core names is a metric of `metrics.Metrics`, every event it notifies is a webhook
event a receiver can subscribe to."""

from __future__ import annotations

from typing import get_args

from cookie_supervisor import config, model
from cookie_supervisor.metrics import Metrics


def test_every_counter_the_core_names_is_a_metric() -> None:
    metrics = Metrics()
    for name in get_args(model.CounterName):
        family = getattr(metrics, name)
        assert family.kind == "counter" and name.startswith(
            family.name[len("cookie_supervisor_") :]
        )
        labels = ("x",) * len(family.labelnames)
        metrics.count(name, labels)
        assert family.values[labels] == 1.0
    for name in get_args(model.HistogramName):
        histogram = getattr(metrics, name)
        assert histogram.name.endswith(name)
        metrics.observe(name, "x", 1.0)


def test_every_event_the_core_notifies_is_a_webhook_event() -> None:
    assert set(get_args(model.NotifyEvent)) == set(config.WEBHOOK_EVENTS)


def test_verdicts_are_the_verdict_words() -> None:
    assert set(model.VERDICTS) == set(get_args(model.Verdict))
