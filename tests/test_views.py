"""The one health verdict (views.verdict), as the daemon serves it, the CLI prints it and the
STATUS= line words it; judged from the core's state after real steps."""

from __future__ import annotations

from dataclasses import replace

from cookie_supervisor import views
from cookie_supervisor.classify import Reason
from cookie_supervisor.core import FileInspected
from cookie_supervisor.model import CookieReport, Now
from cookie_supervisor.views import Verdict
from tests.corekit import MISSING, PATH, T0, Harness, jar
from tests.corekit import settings as source_settings

NOW = Now(T0, T0)


def test_nothing_wrong_is_ok() -> None:
    h = Harness()
    assert views.verdict(h.src) == Verdict(True)  # nothing known against the cookies yet
    h.file(jar())
    h.validated(True)
    assert views.verdict(h.src) == Verdict(True)


def test_the_file_as_it_is_now_outranks_an_older_passing_validation() -> None:
    h = Harness()
    h.file(jar())
    h.validated(True)
    h.file(replace(jar(), file_type="fifo"), at=T0 + 10)
    assert views.verdict(h.src) == Verdict(False, "not_a_file", fixable=False)
    h.file(MISSING, at=T0 + 20)
    assert views.verdict(h.src) == Verdict(False, "missing_cookies", fixable=True)
    h.file(jar(None), at=T0 + 30)
    assert views.verdict(h.src) == Verdict(False, "logged_out", fixable=True)


def test_a_failing_validation_gives_its_reason_and_whether_fresh_cookies_fix_it() -> None:
    h = Harness()
    h.file(jar())
    h.validated(False, Reason.IP_FLAGGED)
    assert views.verdict(h.src) == Verdict(False, "ip_flagged", fixable=False)
    h.validated(False, Reason.COOKIES_ROTATED)
    assert views.verdict(h.src) == Verdict(False, "cookies_rotated", fixable=True)


def test_the_daemon_unable_to_read_the_file_is_no_verdict() -> None:
    h = Harness()
    h.file(jar())
    h.validated(False, Reason.COOKIES_ROTATED)
    h.file(CookieReport(path=PATH, exists=True, os_error="EMFILE"), at=T0 + 5)
    judged = views.verdict(h.src)
    assert judged == Verdict(False, "read_error EMFILE", unknown=True)
    assert views.status(h.src, True, NOW)["verdict"] == judged.as_dict()


def test_the_status_line_words_the_verdict_after_what_the_daemon_does() -> None:
    h = Harness(source_settings("main"), source_settings("alt"))
    h(FileInspected("main", jar()))
    h(FileInspected("alt", MISSING))
    assert views.health_line(h.state, NOW) == "2 sources: main ok, alt missing cookies"
    h.state.redis_up = False
    line = views.health_line(h.state, NOW)
    assert line == "redis down; 2 sources: main ok, alt missing cookies"
    one = Harness()
    one.file(jar())
    one.validated(False, Reason.IP_FLAGGED)
    assert views.health_line(one.state, NOW) == "1 source: main failing (ip_flagged)"
    one.file(CookieReport(path=PATH, exists=True, os_error="EIO"), at=T0 + 5)
    assert views.health_line(one.state, NOW) == "1 source: main unreadable by the daemon (EIO)"
