"""What happens to a source (events, fed to `step`) and what the runtime should do about it
(effects, returned by `step`): plain frozen data, no rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cookie_supervisor.classify import Reason
from cookie_supervisor.model import (
    CookieReport,
    CounterName,
    FinishedJob,
    HistogramName,
    NotifyEvent,
    Origin,
    PendingJob,
    TimerKey,
    TriggerState,
    Validation,
)

# --- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileInspected:
    source: str
    report: CookieReport


@dataclass(frozen=True, slots=True)
class ValidationFinished:
    source: str
    validation: Validation


@dataclass(frozen=True, slots=True)
class QueueObserved:
    """One poll of Redis: pending job per source, finished jobs, and jobs that vanished."""

    pending: dict[str, str | None]
    finished: tuple[FinishedJob, ...] = ()
    vanished: frozenset[str] = frozenset()
    counts: dict[str, int] | None = None
    diagnoses: dict[str, Reason | None] | None = None  # shared through Redis; None: not read
    progress: dict[str, PendingJob] = field(default_factory=dict)  # by source, pending jobs only
    # judged keys of every finished job the read saw (booked or not): the record keeps only
    # those, so it stays as small as Redis's own retention. None: keep the record as it is.
    window: frozenset[str] | None = None
    # The queue's epoch (docs/bull.md §9): a word Redis keeps until it loses its data (FLUSHALL,
    # back empty), then made anew. A new one tells a flush from a peer's deliberate delete (N3).
    epoch: str | None = None
    # When the poll began reading, on the runtime's monotonic clock. Events handled while its
    # reads were awaited (a person's trigger) may come after what it read. None: after them all.
    read_at: float | None = None


@dataclass(frozen=True, slots=True)
class RedisDown:
    error: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    source: str
    key: TimerKey


@dataclass(frozen=True, slots=True)
class RefreshAsked:
    source: str
    reason: Reason
    origin: Origin
    force: bool = False
    error: str | None = None
    video_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshAnswered:
    """What Redis answered an Enqueue: state plus the job id and seconds to wait, if any."""

    source: str
    reason: Reason
    origin: Origin
    state: TriggerState
    job_id: str | None = None
    retry_after: float | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class BackoffObserved:
    source: str
    failures: int
    until: float | None


Event = (
    FileInspected
    | ValidationFinished
    | QueueObserved
    | RedisDown
    | TimerFired
    | RefreshAsked
    | RefreshAnswered
    | BackoffObserved
)


# --- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enqueue:
    source: str
    reason: Reason
    origin: Origin
    force: bool = False
    error: str | None = None
    video_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RunValidation:
    source: str
    trigger: str
    diagnose: bool = False  # also probe without cookies when the media probe fails


@dataclass(frozen=True, slots=True)
class Inspect:
    source: str


@dataclass(frozen=True, slots=True)
class Arm:
    source: str
    key: TimerKey
    at: float


@dataclass(frozen=True, slots=True)
class Cancel:
    source: str
    key: TimerKey


@dataclass(frozen=True, slots=True)
class RecordOutcome:
    """Tell Redis how a refresh ended: the shared backoff counts it (idempotent per job)."""

    source: str
    job_id: str | None
    ok: bool


@dataclass(frozen=True, slots=True)
class ResetBackoff:
    source: str


@dataclass(frozen=True, slots=True)
class ShareDiagnosis:
    """Tell every daemon on the Redis why fresh cookies cannot help (None: that no longer holds).
    It expires after `ttl` seconds unless a validation confirms it again."""

    source: str
    diagnosis: Reason | None
    ttl: float = 0.0


@dataclass(frozen=True, slots=True)
class Count:
    metric: CounterName
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Observe:
    metric: HistogramName
    source: str
    value: float


@dataclass(frozen=True, slots=True)
class Log:
    level: int
    message: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Notify:
    event: NotifyEvent
    source: str
    key: str  # what happened, so two daemons seeing the same thing make the same event id
    summary: str
    reason: str | None = None
    job_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The outcome handed back to whoever asked (the API, the CLI, a report follower)."""

    state: TriggerState
    source: str
    reason: Reason
    message: str
    job_id: str | None = None
    retry_after: float | None = None

    forced: bool = False  # `force` made this job (past the cooldown or backoff, if any)

    @property
    def triggered(self) -> bool:
        """A job was made, is pending, or is owed: a refresh is on its way."""
        return self.state in _ON_ITS_WAY


_ON_ITS_WAY = frozenset({"enqueued", "coalesced", "deferred"})


@dataclass(frozen=True, slots=True)
class Persist:
    """Something the state file keeps has changed."""


Effect = (
    Enqueue
    | RunValidation
    | Inspect
    | Arm
    | Cancel
    | RecordOutcome
    | ResetBackoff
    | ShareDiagnosis
    | Count
    | Observe
    | Log
    | Notify
    | Answer
    | Persist
)
