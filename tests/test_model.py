"""The shared vocabulary's names hold together with what carries them out: every counter and
histogram the core names is a metric of `metrics.Metrics`, every event it notifies is a webhook
event a receiver can subscribe to."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, get_args

import pytest

from cookie_supervisor import config, model
from cookie_supervisor.classify import Reason
from cookie_supervisor.metrics import Metrics
from cookie_supervisor.probe import ACCOUNT_CHECK_URL


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


@pytest.mark.parametrize("event", get_args(model.NotifyEvent))
def test_every_event_the_core_notifies_can_be_subscribed_to(event: str) -> None:
    hook = config.WebhookSettings(url="http://127.0.0.1:9/hook", events=[event])
    assert hook.events == [event]
    assert event in config.WebhookSettings(url="http://127.0.0.1:9/hook").events  # the default


def test_an_event_the_core_never_notifies_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown refresh_started"):
        config.WebhookSettings(url="http://127.0.0.1:9/hook", events=["refresh_started"])


def test_verdicts_are_the_verdict_words() -> None:
    assert set(model.VERDICTS) == set(get_args(model.Verdict))


YOUTUBE = "https://www.youtube.com/watch?v=x"
LOCAL = "http://127.0.0.1:8080/watch?v=x"


@pytest.mark.parametrize(
    ("urls", "account", "expected"),
    [
        pytest.param([YOUTUBE], None, ACCOUNT_CHECK_URL, id="youtube-default"),
        pytest.param([LOCAL], None, None, id="no-default-off-youtube"),
        pytest.param([YOUTUBE], "", None, id="off"),
        pytest.param([LOCAL], "http://127.0.0.1:8080/ll", "http://127.0.0.1:8080/ll", id="set"),
    ],
)
def test_a_policy_resolves_the_account_check(
    urls: list[str], account: str | None, expected: str | None
) -> None:
    cfg = config.SourceSettings(
        name="main",
        cookies_file=Path("/srv/c.txt"),
        validation_urls=urls,
        account_check_url=account,
    )
    assert cfg.policy().account_check_url == expected


def test_a_policy_carries_the_sources_settings_as_plain_data() -> None:
    kw: dict[str, Any] = {
        "validate_every": 60.0,
        "missing_grace": 1.0,
        "corrupt_grace": 2.0,
        "logged_out_confirm": 3.0,
        "rotate_after": 4.0,
        "renew_before": 5.0,
        "upload_timeout": 6.0,
    }
    cfg = config.SourceSettings(
        name="alt", cookies_file=Path("/srv/c.txt"), trigger_on="logged_out,expired", **kw
    )
    policy = cfg.policy()
    assert {k: getattr(policy, k) for k in kw} == kw
    assert (policy.name, policy.cookies_file) == ("alt", Path("/srv/c.txt"))
    assert policy.trigger_on == frozenset({Reason.LOGGED_OUT, Reason.EXPIRED})
    assert policy.validation_urls == tuple(cfg.validation_urls)
    assert hash(policy) == hash(cfg.policy())  # frozen plain data, no pydantic inside
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.name = "other"  # type: ignore[misc]
