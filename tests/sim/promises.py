"""The promises of issue 16, checked after every step of a simulated world (docs/core.md).

`Promises` watches the world (the observer hooks of world.World) and records a `Violation` the
first time each promise breaks. It also keeps the economy: logins per repaired incident, time to
repair, jobs behind a flagged IP (needed: the jar missing or broken, or its session dead, which P2
asks for; avoidable: the rest), jobs while uploads keep failing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cookie_supervisor import core
from cookie_supervisor.classify import Reason
from tests.sim.redis_model import Job, RedisDownError
from tests.sim.world import SOURCE, T0, SimDaemon, World

FILE_PROBLEMS = frozenset(
    {Reason.MISSING_COOKIES, Reason.CORRUPT_COOKIES, Reason.LOGGED_OUT, Reason.EXPIRED}
)
SLACK = 15.0  # seconds: polls, debounce, a validation in flight
FUTILE_MODES = frozenset({"new_bad", "fail", "no_upload", "same"})


@dataclass(frozen=True, slots=True)
class Violation:
    promise: str
    at: float  # true time, seconds from the scenario's start
    message: str


@dataclass(slots=True)
class JobInfo:
    uid: int
    job_id: str
    enqueued: float
    reason: str
    automatic: bool
    daemon: int
    created: float  # the job's timestamp (the enqueuing host's clock), as the core keys it
    finished: float | None = None
    ok: bool | None = None
    mode: str | None = None
    seen: float | None = None  # first poll that could see it finished
    verdicts: list[tuple[int, str]] = field(default_factory=list)  # (incarnation, verdict)
    uploaded: bool = False
    watchers: set[int] = field(default_factory=set)  # daemon runs whose poll saw it finished
    alive: frozenset[int] = frozenset()  # daemon runs alive when it finished


def rationed(count: int, window: float, base: float, cap: float) -> bool:
    """P1's bound: at most 1 + ceil(log2(1 + W/base)) + W/cap jobs in a window W."""
    return count <= 1 + math.ceil(math.log2(1 + window / base)) + window / cap + 1e-9


@dataclass(slots=True)
class Economy:
    incidents: int = 0
    repaired: int = 0
    logins_repaired: int = 0
    repair_times: list[float] = field(default_factory=list)
    flagged_seconds: float = 0.0
    flagged_jobs: int = 0  # automatic jobs behind a flagged IP: needed + avoidable
    flagged_needed: int = 0  # the jar missing or broken, or its session dead: P2 asks them
    failing_seconds: float = 0.0
    failing_jobs: int = 0


class Promises:
    def __init__(self, world: World) -> None:
        self.w = world
        self.violations: list[Violation] = []
        self.broken: set[str] = set()
        self.jobs: dict[int, JobInfo] = {}
        self.by_id: dict[str, int] = {}  # bull id -> uid of the newest job with it
        self.booked: dict[tuple[int, int], str] = {}  # (incarnation, uid) -> verdict
        self.notified: set[tuple[int, str, str]] = set()
        self.unseen: set[int] = set()  # finished jobs no poll has seen yet
        self.recent: set[int] = set()  # finished in the last hour: whose polls see them
        self.checked = (-1, -1.0)
        self.need_checked: dict[int, tuple[tuple[int, int, int, bool], float]] = {}
        # P1
        self.futile_since: float | None = None
        self.first_unsuccessful: float | None = None
        self.futile_jobs: list[float] = []
        self.blocked_since: float | None = None
        self.flushes = 0  # Redis's lifetime the P1 window counts in
        self.diagnosed_at: float | None = None
        self.diagnosers: set[int] = set()  # daemon runs whose own validation diagnosed it
        self.diagnosis: Reason | None = None  # what the diagnosis named
        # P2, per daemon run (incarnation): a run's clock starts at its start, at the latest
        self.stuck_since: dict[int, float] = {}
        # when the need began, the seconds allowed, and Redis's backoff end then (ms)
        self.need_since: dict[int, tuple[float, float, int | None]] = {}
        # P4
        self.owed_people: dict[int, list[tuple[float, int]]] = defaultdict(list)
        # (daemon run, job id, Redis's lifetime): jobs a run's poll read finished (N22)
        self.seen_ended: set[tuple[int, str, int]] = set()
        # (when, daemon run, job id): a person answered `coalesced` onto a job that had already
        # failed or vanished in Redis, which the daemon's last poll could not know (N23)
        self.riders: dict[int, list[tuple[float, int, str]]] = defaultdict(list)
        self.saved_at: dict[int, float] = {}
        self.redis_up_since: float | None = T0
        # P2, from the world's side: evidence delivered while the cookies are truly dead
        self.evidence: tuple[float, float] | None = None  # (when, allowed seconds)
        self.evidence_by: SimDaemon | None = None
        # P6
        self.passed: dict[int, float] = {}
        self.last_pass: dict[
            int, int | None
        ] = {}  # daemon run -> session its last pass judged  # session -> true time a validation passed on it
        # economy
        self.eco = Economy()
        self.incident: tuple[float, int] | None = None  # (start, logins then)
        self.last_t = world.t
        world.observers.append(self)

    # --- bookkeeping --------------------------------------------------------------------

    def fail(self, promise: str, message: str) -> None:
        if promise in self.broken:
            return
        self.broken.add(promise)
        self.violations.append(Violation(promise, self.w.t - T0, message))
        self.w.note(f"VIOLATION {promise}: {message}")

    def _uid(self, job_id: str | None, created: float | None = None) -> int | None:
        """The job a verdict names: by its id and creation time when known (ids repeat after a
        flush), else the newest with that id that has finished (a verdict is about a job that
        ended: the one pending under the same id is another)."""
        if job_id is None:
            return None
        if created is not None:
            for uid, info in self.jobs.items():
                if info.job_id == job_id and abs(info.created - created) < 0.0015:
                    return uid
        for uid in sorted(self.jobs, reverse=True):
            info = self.jobs[uid]
            if info.job_id == job_id and info.finished is not None:
                return uid
        job = self.w.redis.jobs.get(job_id)
        if job is not None and job.uid in self.jobs:
            return job.uid
        return self.by_id.get(job_id)

    # --- hooks from the world -----------------------------------------------------------

    def step(self, d: SimDaemon, event: core.Event, fx: list[core.Effect]) -> None:
        if self.w.tracing:
            self.w.note(f"{d.name}#{d.incarnation} {_short(event)} -> {_effects(fx)}")
        if self.incident is not None and self.evidence is None and _evidence(d, event):
            self._evidence_at(d)
        if isinstance(event, core.QueueObserved) and self.recent:
            self._watched(d, {j.job_id for j in event.finished})
        if isinstance(event, core.QueueObserved):
            flushes = self.w.redis.flushes
            self.seen_ended.update((d.incarnation, j.job_id, flushes) for j in event.finished)
        if isinstance(event, core.QueueObserved) and self.unseen:
            r = self.w.redis
            for uid in list(self.unseen):
                info = self.jobs[uid]
                job = r.jobs.get(info.job_id)
                if job is None or job.uid != uid:
                    self.unseen.discard(uid)  # gone before any daemon could see it
                elif info.job_id in r.completed or info.job_id in r.failed:
                    info.seen = self.w.t
                    self.unseen.discard(uid)
        for f in fx:
            if isinstance(f, core.Log):
                msg = f.message
                verdict = None
                if msg.startswith("refresh verification: "):
                    verdict = msg.removeprefix("refresh verification: ")
                elif msg == "refresh job failed":
                    verdict = "failed"
                if verdict is not None:
                    self._book(d, f.fields.get("job_id"), verdict, _created(d, event, f))
            elif isinstance(f, core.Notify):
                key = (d.incarnation, f.event, f.key)
                if not f.key:
                    self.fail("P7", f"{f.event} notification without a key")
                elif key in self.notified:
                    self.fail("P7", f"{d.name} sent {f.event} {f.key} twice")
                self.notified.add(key)

    def _watched(self, d: SimDaemon, seen: set[str]) -> None:
        """A poll that saw a finished job (still in Redis, the same job, in completed or failed)
        by a daemon run alive when it finished makes that run one that must book it; a flush
        before its poll does not (and a run started later finds it as history)."""
        r = self.w.redis
        for uid in list(self.recent):
            info = self.jobs[uid]
            if info.finished is None or self.w.t - info.finished > 3600:
                self.recent.discard(uid)
                continue
            job = r.jobs.get(info.job_id)
            if info.job_id not in seen or d.incarnation not in info.alive:
                continue
            if (
                job is not None
                and job.uid == uid
                and (info.job_id in r.completed or info.job_id in r.failed)
            ):
                info.watchers.add(d.incarnation)

    def _book(self, d: SimDaemon, job_id: str | None, verdict: str, created: float | None) -> None:
        uid = self._uid(job_id, created)
        if uid is None:
            return  # a job this world did not make (none exist) or one long forgotten
        key = (d.incarnation, uid)
        if key in self.booked:
            self.fail(
                "P3",
                f"{d.name} booked job {job_id} twice ({self.booked[key]}, then {verdict})",
            )
        self.booked[key] = verdict
        info = self.jobs[uid]
        info.verdicts.append((d.incarnation, verdict))
        if verdict == "no_upload" and info.uploaded:
            self.fail("P3", f"job {job_id} uploaded a jar and was booked no_upload")
        if verdict == "failed" and info.ok:
            self.fail("P3", f"job {job_id} completed and was booked failed")

    def enqueue(self, d: SimDaemon, fx: core.Enqueue, st: str, job_id: str | None) -> None:
        automatic = not (fx.force or fx.reason is Reason.MANUAL)
        if not automatic and st != "deferred":
            # a person's request, asked as theirs: Redis's answer (a job, the pending one, or the
            # cooldown/backoff a person without `force` meets when asking directly) is theirs
            self.owed_people[d.idx] = []
            self.riders[d.idx] = []
        if st != "enqueued" or job_id is None:
            return
        self.riders.clear()  # a job is on its way for everyone who asked before it
        w = self.w
        job = w.redis.jobs[job_id]
        info = JobInfo(
            job.uid, job_id, w.t, fx.reason.value, automatic, d.idx, job.timestamp / 1000
        )
        self.jobs[job.uid] = info
        self.by_id[job_id] = job.uid
        w.note(f"{d.name} enqueued job {job_id} uid {job.uid} {fx.reason.value} ({fx.origin})")
        if self.evidence is not None:
            self.evidence = None  # asked for: P2's clock stops
        if not automatic:
            return
        yt = w.youtube
        calm = not (yt.futile or yt.rate_limited) and w.worker_mode not in FUTILE_MODES
        rotation = fx.reason in (Reason.SCHEDULED_ROTATION, Reason.EXPIRING_SOON)
        if calm and not rotation and self._jar_healthy() and fx.reason not in FILE_PROBLEMS:
            self.fail(
                "P5",
                f"{fx.reason.value} job {job_id} ({fx.origin}) for a healthy, honoured jar",
            )
        # P5: a healthy upload (or a healthy jar) never asks for a refresh
        if fx.reason in FILE_PROBLEMS and (w.writing or self._jar_healthy()):
            how = "while a healthy jar was being uploaded" if w.writing else "for a healthy jar"
            self.fail("P5", f"{fx.reason.value} job {job_id} {how}")
        # P1: while the IP/PO token/account is diagnosed, no automatic job
        # A peer's diagnosis reaches this daemon through Redis at its next poll: until then it
        # could not know (its own runs may not tell: no account check, on demand only).
        known = self.diagnosed_at is not None and (
            d.incarnation in self.diagnosers or w.t - self.diagnosed_at > 2 * d.cfg.poll + 1
        )
        if yt.blocked is not None and known and yt.honoured(w.jar.session):
            self.fail(
                "P1",
                f"automatic job {job_id} ({fx.reason.value}) while {yt.blocked.value} stood "
                f"diagnosed since {self.diagnosed_at - T0:.0f}s",
            )
        # P1 (N27): a daemon with an account check tells a flagged IP from the cookies by its own
        # validation (the account check passes, or the wall stops it and a guest alike): a job
        # on that validation's verdict, for an honoured jar behind a flagged IP, is avoidable
        own = fx.origin == "validation" and not rotation
        looks = d.cfg.account_check and not d.cfg.offline_only
        if yt.ip_flagged and own and looks and self._jar_honoured() and not yt.rate_limited:
            self.fail(
                "P1",
                f"automatic job {job_id} ({fx.reason.value}) on {d.name}'s own validation behind "
                "a flagged IP, for an honoured jar: its account check and a guest could tell",
            )
        if yt.ip_flagged:
            self.eco.flagged_jobs += 1
            self.eco.flagged_needed += not self._jar_honoured()
        if w.worker_mode in ("new_bad", "fail"):
            self.eco.failing_jobs += 1
        # P1: rationed while refreshes cannot help, per lifetime of Redis's data: the count is
        # the shared record in Redis, and a Redis that lost everything lost it for every daemon
        if self.flushes != w.redis.flushes:
            self.flushes = w.redis.flushes
            self.first_unsuccessful, self.futile_jobs = None, []
        if self.futile_since is not None and self.first_unsuccessful is not None:
            self.futile_jobs.append(w.t)
            base = min(c.refresh_backoff for c in w.configs.values())
            cap = min(c.refresh_backoff_max for c in w.configs.values())
            times = self.futile_jobs
            for i, start in enumerate(times):
                count, window = len(times) - i, w.t - start
                if not rationed(count, window, base, cap):
                    self.fail(
                        "P1",
                        f"{count} automatic jobs in {window:.0f}s while refreshes cannot help "
                        f"(bound {1 + math.ceil(math.log2(1 + window / base)) + window / cap:.1f},"
                        f" backoff {base:g}s, cap {cap:g}s)",
                    )
                    break

    def worker_uploads(self, job: Job, uploads: bool) -> None:
        info = self.jobs.get(job.uid)
        if info is not None and uploads:
            info.uploaded = True

    def worker_finished(self, job: Job, ok: bool, mode: str) -> None:
        info = self.jobs.get(job.uid)
        final = job.finished_on is not None and (ok or job.attempts_made >= job.attempts)
        if info is not None and final:
            info.finished, info.ok, info.mode = self.w.t, ok, mode
            self.recent.add(info.uid)
            info.alive = frozenset(d.incarnation for d in self.w.daemons.values() if d.alive)
            self.unseen.add(info.uid)
        if final and self.futile_since is not None and self.first_unsuccessful is None:
            self.first_unsuccessful = self.w.t

    def outcome(self, d: SimDaemon, fx: core.RecordOutcome, failures: int) -> None:
        if fx.ok:
            self._check_reset(d, "a verified refresh")

    def reset(self, d: SimDaemon, before: int) -> None:
        if before > 0:
            self._check_reset(d, "ResetBackoff")

    def _check_reset(self, d: SimDaemon, what: str) -> None:
        """The reset must come from a validation that passed on the session it judged (the
        daemon's newest), started after that session arrived."""
        if d.cfg.offline_only:
            what += ", by an offline-only daemon"
        session = self.last_pass.get(d.incarnation)
        if session is None:
            session = self.w.jar.session
        if session is None or session not in self.passed:
            self.fail(
                "P6",
                f"{d.name} reset the shared backoff ({what}) on session {session}, which no "
                "validation passed",
            )

    def validation(self, d: SimDaemon, v: core.Validation, session: int | None, t: float) -> None:
        w = self.w
        arrived = w.session_at.get(session) if session is not None else None
        # An offline check cannot tell whether YouTube honours a session: it counts as a pass
        # only when no daemon on this Redis validates online.
        online = any(not c.offline_only for c in w.configs.values())
        counts = not (v.offline and online)
        passed = v.ok and counts and session is not None and arrived is not None and t >= arrived
        self.last_pass[d.incarnation] = session if passed else None
        if passed and session is not None:
            self.passed.setdefault(session, w.t)
            if v.ok and not v.offline:
                # Fresh cookies did help (an operator's upload, a refresh that worked): P1's
                # window of refreshes that cannot help starts again after this (P6's reset).
                self.first_unsuccessful, self.futile_jobs = None, []
            if self.incident is not None and w.youtube.honoured(session):
                start, logins = self.incident
                self.eco.repaired += 1
                self.eco.logins_repaired += w.logins - logins
                self.eco.repair_times.append(w.t - start)
                self.incident = None
        # A guest getting through (the cookie-less probe passed) contradicts a diagnosis that
        # named the address or the PO token: it proves both wrong (N18). What stops the cookies
        # then (the account, or a session YouTube dropped) a daemon without an account check
        # learns from a refresh's fresh session: P1's ration holds that refresh, not the zero.
        guest = v.bare_ok is True and self.diagnosis in (
            Reason.IP_FLAGGED,
            Reason.PO_TOKEN_REQUIRED,
        )
        if v.diagnosis is not None and w.youtube.blocked is not None:
            self.diagnosed_at = self.diagnosed_at or w.t
            self.diagnosers.add(d.incarnation)
            self.diagnosis = v.diagnosis
        elif v.ok or v.reason in (Reason.LOGGED_OUT, Reason.COOKIES_ROTATED) or guest:
            self.diagnosed_at = None  # newer evidence contradicts the diagnosis
            self.diagnosers.clear()

    def _evidence_at(self, d: SimDaemon) -> None:
        """A daemon was told the cookies are dead (while they are, and a refresh can fix it)."""
        w = self.w
        cfg = d.settings
        allowed = cfg.refresh_cooldown + SLACK + 2 * d.cfg.poll + 60.0  # a grace, a validation
        allowed += self._backoff(d)
        self.evidence = (w.t if w.redis.up else math.inf, allowed)
        self.evidence_by = d

    def _backing_off(self) -> bool:
        """The evidence's daemon waits a backoff booked after the evidence came (the validation
        that is the evidence books the refresh it judged unsuccessful, then asks): P2's clock
        then runs to the end of that wait, plus cooldown and slack."""
        d, ev = self.evidence_by, self.evidence
        if d is None or ev is None or not d.alive:
            return False
        wait = self._backoff(d)
        if wait <= 0:
            return False
        extra = d.settings.refresh_cooldown + SLACK + 2 * d.cfg.poll + 60.0
        self.evidence = (ev[0], max(ev[1], self.w.t + wait + extra - ev[0]))
        return True

    def _backoff(self, d: SimDaemon) -> float:
        """The backoff a need may wait: the shared one Redis holds. Daemons on one Redis share
        one count and one `backoff_until`, computed by the daemon that booked the last
        unsuccessful refresh with *its* `refresh_backoff`: with differing configs, a daemon with
        a 3 s backoff waits the 30 min its peer's booking set (docs/core.md, P2)."""
        w = self.w
        # What Redis said before it lost its data (a flush) the daemon still honours: P1's
        # ration is per lifetime of Redis's data, a retry armed for the old backoff may stand.
        told = d.state.sources[SOURCE].backoff_until
        remembered = told - d.wall() if told is not None else 0.0
        if not w.redis.up:
            return max(0.0, remembered)
        failures, until = w.redis.backoff_state(SOURCE)
        if failures <= 0:
            return max(0.0, remembered)
        cfg = d.settings
        own = core.backoff_delay(failures, cfg.refresh_backoff, cfg.refresh_backoff_max)
        shared = until / 1000 - w.t if until else 0.0
        return max(own, shared, remembered)

    def saved(self, d: SimDaemon) -> None:
        self.saved_at[d.idx] = self.w.t

    # --- people -------------------------------------------------------------------------

    def person_answered(self, d: SimDaemon, answer: core.Answer | None, force: bool) -> None:
        if answer is None:
            self.fail("P4", f"{d.name} gave a person's request no answer")
            return
        if answer.state in ("ignored", "validating"):
            self.fail("P4", f"{d.name} answered a person's request {answer.state}")
        ended = (d.incarnation, answer.job_id or "", self.w.redis.flushes)
        if answer.state == "coalesced" and ended in self.seen_ended:
            # The job it names ended, and this daemon's poll said so: nothing runs for them (N22)
            self.fail(
                "P4",
                f"{d.name} answered a person's request coalesced onto job {answer.job_id}, "
                "which its poll had read finished",
            )
        if answer.state == "deferred":
            self.owed_people[d.idx].append((self.w.t, d.incarnation))
        if answer.state == "coalesced" and answer.job_id and self._ended_badly(answer.job_id):
            self.riders[d.idx].append((self.w.t, d.incarnation, answer.job_id))

    def _ended_badly(self, job_id: str) -> bool:
        try:
            return self.w.redis.job_state(job_id, SOURCE) in ("failed", "missing")
        except RedisDownError:
            return False

    def person_lost(self, idx: int) -> None:
        """SIGKILL before the state file held the owed request: the process died with it."""
        saved = self.saved_at.get(idx, -1.0)
        self.owed_people[idx] = [(t, i) for t, i in self.owed_people[idx] if t < saved]

    def file_broken(self) -> None:
        """The world deleted the jar or wrote a captive-portal page over it: a new incident that
        a refresh does fix (it writes the jar back), whatever YouTube thinks of the sessions. P1
        rations refreshes that do not help; the window starts again at this new need."""
        self.first_unsuccessful, self.futile_jobs = None, []

    # --- the world's own changes ----------------------------------------------------------

    def world_changed(self) -> None:
        """Called after every scripted action: futility periods and incidents."""
        w = self.w
        futile = w.youtube.futile or w.worker_mode in FUTILE_MODES
        if futile and self.futile_since is None:
            self.futile_since, self.first_unsuccessful, self.futile_jobs = w.t, None, []
        elif not futile:
            self.futile_since = None
        if w.youtube.blocked is None:
            self.diagnosed_at = None
            self.diagnosers.clear()
        if w.redis.up and self.redis_up_since is None:
            self.redis_up_since = w.t
        elif not w.redis.up:
            self.redis_up_since = None
        broken = not self._jar_healthy() and not w.writing
        if broken and self.incident is None and not futile:
            self.incident = (w.t, w.logins)
            self.eco.incidents += 1
        elif futile and self.incident is not None:
            self.incident = None  # not an incident a working extractor can repair
        r = w.redis
        last = r.own_job(SOURCE) if r.up else None  # read only: the checker changes nothing
        pending = last is not None and r.is_pending(last)
        ev, by = self.evidence, self.evidence_by
        if ev is not None and by is not None and not by.alive:
            run = w.daemons.get(by.idx)
            if run is not None and run.alive:
                # A new run of the daemon that was told: it looks at the jar anew, and a file
                # problem's grace starts again at its start (D16); its clock starts there too.
                self.evidence_by, by, ev = run, run, (math.inf, ev[1])
        if ev is not None and (not r.up or (by is not None and not by.alive)):
            ev = (math.inf, ev[1])  # paused while Redis is away, or the daemon told is down
        elif ev is not None and ev[0] == math.inf:
            ev = (w.t, ev[1])  # Redis is back, or the daemon: the clock starts again
        self.evidence = ev
        if self.incident is None or not broken or w.youtube.rate_limited or pending:
            self.evidence = None
        elif (
            self.evidence is not None
            and self.evidence[0] != math.inf
            and w.t - self.evidence[0] > self.evidence[1]
            and not self._backing_off()
        ):
            if any(d.alive for d in w.daemons.values()):
                self.fail(
                    "P2",
                    f"cookies dead and reported at {self.evidence[0] - T0:.0f}s, no job after "
                    f"{w.t - self.evidence[0]:.0f}s (cooldown + backoff + grace allow "
                    f"{self.evidence[1]:.0f}s)",
                )
            self.evidence = None

    def _jar_healthy(self) -> bool:
        return self._jar_honoured() and not self.w.writing

    def _jar_honoured(self) -> bool:
        """The jar in place is a complete cookie file whose session YouTube honours: a refresh
        has nothing to fix in it (behind a flagged IP, a job for it is avoidable)."""
        jar = self.w.jar
        return jar.exists and self.w.youtube.honoured(jar.session)

    # --- after every step -----------------------------------------------------------------

    def check(self) -> None:
        w = self.w
        if self.checked == (w.steps, w.t):
            return
        self.checked = (w.steps, w.t)
        dt = w.t - self.last_t
        self.last_t = w.t
        if w.youtube.ip_flagged:
            self.eco.flagged_seconds += dt
        if w.worker_mode in ("new_bad", "fail"):
            self.eco.failing_seconds += dt
        for d in w.daemons.values():
            if d.alive:
                self._standing_need(d)
        self._people()

    def _standing_need(self, d: SimDaemon) -> None:
        w = self.w
        # Only a change of the daemon or of Redis, or time passing, can change the verdict.
        mark = (d.incarnation, d.changes, w.redis.version, w.redis.up)
        last = self.need_checked.get(d.idx)
        if last is not None and last[0] == mark and w.t - last[1] < 5.0:
            return
        self.need_checked[d.idx] = (mark, w.t)
        src = d.state.sources[SOURCE]
        if d.state.redis_up is not True or not w.redis.up:
            self.stuck_since.pop(d.incarnation, None)
            self.need_since.pop(d.incarnation, None)
            return
        reason = core.need(src, d.now())
        ver = src.verifying
        verifying = ver is not None and _before(d, ver.deadline + 120.0)
        busy = src.pending_job is not None or verifying
        if reason is None or busy:
            self.stuck_since.pop(d.incarnation, None)
            self.need_since.pop(d.incarnation, None)
            return
        # P2 (a): something must be on its way, or armed
        armed = (
            src.requesting
            or src.validating
            or src.owed is not None
            or any(k.endswith(":" + SOURCE) and not k.startswith("rotation") for k in d.timers)
        )
        if armed:
            self.stuck_since.pop(d.incarnation, None)
        else:
            since = self.stuck_since.setdefault(d.incarnation, w.t)
            if w.t - since > SLACK:
                self.fail(
                    "P2",
                    f"{d.name}: {reason.value} needed since {since - T0:.0f}s with nothing "
                    "pending, owed or armed",
                )
        # P2 (b): asked within cooldown (+ backoff after unsuccessful refreshes)
        run = d.incarnation
        if run not in self.need_since:
            allowed = d.settings.refresh_cooldown + SLACK + 2 * d.cfg.poll + self._backoff(d)
            self.need_since[run] = (w.t, allowed, w.redis.backoff_state(SOURCE)[1])
        start, allowed, until = self.need_since[run]
        if w.t - start > allowed:
            # An unsuccessful refresh booked after the need began (a peer's verification of the
            # job before it still open) set a backoff that this need waits too: its end + slack.
            booked = w.redis.backoff_state(SOURCE)[1]
            if booked is not None and booked != until:
                allowed = max(allowed, booked / 1000 - start + SLACK + 2 * d.cfg.poll)
                self.need_since[run] = (start, allowed, until)
        if w.t - start > allowed:
            self.fail(
                "P2",
                f"{d.name}: {reason.value} needed since {start - T0:.0f}s, no job after "
                f"{w.t - start:.0f}s (cooldown + backoff allow {allowed:.0f}s)",
            )

    def _people(self) -> None:
        w = self.w
        self._riders()
        if self.redis_up_since is None or w.t - self.redis_up_since < 60:
            return
        for idx, owed in self.owed_people.items():
            d = w.daemons.get(idx)
            if d is None or not d.alive or not owed:
                continue
            first = owed[0][0]
            # A daemon down when Redis came back pays at its start, not before (seed 1002421)
            if w.t - max(first, self.redis_up_since, d.born) > 60:
                self.fail(
                    "P4",
                    f"{d.name}: a person's request deferred at {first - T0:.0f}s was never paid "
                    "as theirs",
                )

    def _riders(self) -> None:
        """A person's request coalesced onto a job that had already failed is asked again once
        the next poll read after it tells the daemon so (N23). Not kept across a restart."""
        w = self.w
        for idx, rides in self.riders.items():
            d = w.daemons.get(idx)
            rides[:] = [r for r in rides if d is not None and d.alive and r[1] == d.incarnation]
            if not rides or not w.redis.up or d is None or d.state.redis_up is not True:
                continue
            t, _, job_id = rides[0]
            if w.t - t > 2 * d.cfg.poll + 1:
                self.fail(
                    "P4",
                    f"{d.name}: a person's request at {t - T0:.0f}s, answered coalesced onto job "
                    f"{job_id} that had already ended unsuccessfully, was never asked",
                )
                rides.clear()

    def finish(self, end: float) -> None:
        """At the end of the scenario: every job seen finished got a verdict (P3)."""
        w = self.w
        self.check()
        longest = max(c.upload_timeout for c in w.configs.values())
        for info in self.jobs.values():
            if info.seen is None or info.seen > end - longest - 180:
                continue
            # A restart re-books a job whose verification was open (the deadline is on the
            # monotonic clock, which a restart begins again): its verdict is due a whole
            # upload_timeout after the run that books it started, not after the job's end.
            since = [max(info.seen, d.born) for d in w.daemons.values() if d.alive]
            if not since or min(since) > end - longest - 180:
                continue
            if not info.verdicts:
                self.fail(
                    "P3",
                    f"job {info.job_id} (uid {info.uid}, {info.reason}) finished "
                    f"{'ok' if info.ok else 'failed'} at {(info.finished or 0) - T0:.0f}s "
                    "and was never booked",
                )
                break
            # every daemon that watched it finish, still running, judges it too
            alive = {d.incarnation: d for d in w.daemons.values() if d.alive}
            booked = {run for run, _ in info.verdicts}
            missing = [alive[i].name for i in info.watchers if i in alive and i not in booked]
            if missing and info.verdicts:
                self.fail(
                    "P3",
                    f"job {info.job_id} (uid {info.uid}) was never booked by {missing[0]}, "
                    "which watched it finish",
                )
                break


def _evidence(d: SimDaemon, event: core.Event) -> bool:
    """A report or a validation that says fresh cookies would fix it. An ambiguous text (a 403,
    a private, members-only or age-gated video) says so only once a validation confirms it
    (P5: validated first): to a daemon that cannot look online (`validation_urls = []`) it is
    no evidence: its offline check cannot confirm it, and a login for it would be P5's waste."""
    if isinstance(event, core.RefreshAsked):
        if core.ambiguous(event.reason, event.error or event.detail):
            return False  # the validation it gets is the evidence, if it confirms
        src = d.state.sources[SOURCE]
        if src.diagnosis is not None and core.diagnosis_fresh(src, d.now()):
            # The daemon's own cookie-less probe said minutes ago that fresh cookies cannot help:
            # newer than the report's text, which a flagged IP prints too (D2b). The report after
            # DIAGNOSIS_RECHECK gets a validation, which is the evidence then (N9).
            return False
        return event.reason.fixable and event.reason is not Reason.MANUAL
    if isinstance(event, core.ValidationFinished):
        reason = event.validation.reason
        return reason is not None and reason.fixable
    return False


def _created(d: SimDaemon, event: core.Event, log: core.Log) -> float | None:
    """The creation time of the job a verdict's log line names: the daemon's open verification
    before the step, or the finished job the poll saw."""
    job_id = log.fields.get("job_id")
    ver = d.verifying_before
    if ver is not None and ver[0] == job_id and log.message != "refresh job failed":
        return ver[1]
    if isinstance(event, core.QueueObserved):
        for j in event.finished:
            if j.job_id == job_id:
                return j.created_at
    return None


def _before(d: SimDaemon, t: float) -> bool:
    now = d.now()
    return bool((now.mono if hasattr(now, "mono") else now) < t)


def _short(event: Any) -> str:
    name = type(event).__name__
    match event:
        case core.FileInspected():
            r = event.report
            state = (
                "missing"
                if not r.exists
                else (r.error or ("in:" + (r.fingerprint or "")[:6] if r.logged_in else "out"))
            )
            return f"{name}({state}, size={r.size})"
        case core.ValidationFinished():
            v = event.validation
            return (
                f"{name}(ok={v.ok}, reason={v.reason}, diagnosis={v.diagnosis}, "
                f"trigger={v.trigger}, offline={v.offline})"
            )
        case core.QueueObserved():
            done = [(j.job_id, j.outcome) for j in event.finished]
            return (
                f"{name}(pending={event.pending}, finished={done}, vanished={set(event.vanished)})"
            )
        case core.TimerFired():
            return f"{name}({event.key})"
        case core.RefreshAsked():
            return f"{name}({event.reason}, {event.origin}, force={event.force})"
        case core.RefreshAnswered():
            return f"{name}({event.state}, job={event.job_id}, retry={event.retry_after})"
        case core.BackoffObserved():
            return f"{name}({event.failures}, until={event.until})"
    return repr(event)


def _effects(fx: list[core.Effect]) -> str:
    parts = []
    for f in fx:
        if isinstance(f, core.Count | core.Observe | core.Persist):
            continue
        if isinstance(f, core.Log):
            parts.append(f"Log({f.message!r})")
        elif isinstance(f, core.Notify):
            parts.append(f"Notify({f.event})")
        elif isinstance(f, core.Answer):
            parts.append(f"Answer({f.state})")
        else:
            parts.append(repr(f))
    return ", ".join(parts) or "-"
