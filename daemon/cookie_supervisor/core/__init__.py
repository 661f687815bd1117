"""Every decision the daemon takes, as a pure function: `step(state, event, now) -> effects`.

Events say what happened (a file was inspected, a validation finished, the queue was observed, a
timer fired, someone asked for a refresh, Redis went away). Effects say what to do (enqueue a job,
run a validation, arm a timer, count, log, notify). Nothing here does I/O, awaits, reads a clock or
touches prometheus-client: the runtime (`supervisor.py`) carries effects out and feeds their results
back as events, and tests drive this package with a fake clock (tests/test_core_*.py).

The rule behind every refresh: a job costs a browser login on a real account, so one is asked for
only while evidence that fresh cookies fix the failure *stands* — and that evidence is looked at
again whenever a request is refused (cooldown, backoff), a job fails or vanishes, or Redis returns.

The sub-machines and how they couple are in `step.py`'s docstring. This module re-exports what the
runtime and the tests use, so `core.step(...)`, `core.State`, `core.FileInspected` keep working.
"""

from __future__ import annotations

from cookie_supervisor.backoff import backoff_delay
from cookie_supervisor.classify import Reason
from cookie_supervisor.core.events import (
    Answer,
    Arm,
    BackoffObserved,
    Cancel,
    Count,
    Effect,
    Enqueue,
    Event,
    FileInspected,
    Inspect,
    Log,
    Notify,
    Observe,
    Persist,
    QueueObserved,
    RecordOutcome,
    RedisDown,
    RefreshAnswered,
    RefreshAsked,
    ResetBackoff,
    RunValidation,
    ShareDiagnosis,
    TimerFired,
    ValidationFinished,
)
from cookie_supervisor.core.file import (
    session_ended,
)
from cookie_supervisor.core.health import (
    track_usable,
    unusable_reason,
    worst_usable,
)
from cookie_supervisor.core.problems import (
    INEFFECTIVE_AFTER,
    standing,
)
from cookie_supervisor.core.refresh import (
    ambiguous,
    need,
    resolve_reason,
    still_owed,
)
from cookie_supervisor.core.source import (
    DIAGNOSIS_RECHECK,
    FILE_PROBLEMS,
    HISTORY,
    LEARN_FROM,
    LEARN_WINDOW,
    LEARNED_SHARE,
    REQUESTED_KEPT,
    SHARED_HOLD,
    Source,
    Spell,
    State,
    Verification,
    diagnosis_fresh,
    learned_renewal,
    lifetime_median,
)
from cookie_supervisor.core.step import (
    step,
)
from cookie_supervisor.core.validation import (
    diagnosis_ttl,
    plan_validation,
)
from cookie_supervisor.model import (
    LIFETIMES_KEPT,
    NOT_INSPECTED,
    SESSIONS_KEPT,
    VERDICTS,
    WALL_TIMERS,
    CookieReport,
    FinishedJob,
    Lifetime,
    Now,
    Origin,
    Owed,
    PendingJob,
    Policy,
    TimerKey,
    TriggerState,
    Usable,
    Validation,
    Verdict,
    as_now,
    judged_key,
)
from cookie_supervisor.verdict import (
    ProbeKind,
    ProbeRun,
    ProbeSaid,
    ValidationPlan,
    conclude,
    next_probe,
    offline_validation,
    settles,
    validation_of,
    wants_account_check,
    wants_diagnosis,
)

__all__ = [
    "DIAGNOSIS_RECHECK",
    "FILE_PROBLEMS",
    "HISTORY",
    "INEFFECTIVE_AFTER",
    "LEARNED_SHARE",
    "LEARN_FROM",
    "LEARN_WINDOW",
    "LIFETIMES_KEPT",
    "NOT_INSPECTED",
    "REQUESTED_KEPT",
    "SESSIONS_KEPT",
    "SHARED_HOLD",
    "VERDICTS",
    "WALL_TIMERS",
    "Answer",
    "Arm",
    "BackoffObserved",
    "Cancel",
    "CookieReport",
    "Count",
    "Effect",
    "Enqueue",
    "Event",
    "FileInspected",
    "FinishedJob",
    "Inspect",
    "Lifetime",
    "Log",
    "Notify",
    "Now",
    "Observe",
    "Origin",
    "Owed",
    "PendingJob",
    "Persist",
    "Policy",
    "ProbeKind",
    "ProbeRun",
    "ProbeSaid",
    "QueueObserved",
    "Reason",
    "RecordOutcome",
    "RedisDown",
    "RefreshAnswered",
    "RefreshAsked",
    "ResetBackoff",
    "RunValidation",
    "ShareDiagnosis",
    "Source",
    "Spell",
    "State",
    "TimerFired",
    "TimerKey",
    "TriggerState",
    "Usable",
    "Validation",
    "ValidationFinished",
    "ValidationPlan",
    "Verdict",
    "Verification",
    "ambiguous",
    "as_now",
    "backoff_delay",
    "conclude",
    "diagnosis_fresh",
    "diagnosis_ttl",
    "judged_key",
    "learned_renewal",
    "lifetime_median",
    "need",
    "next_probe",
    "offline_validation",
    "plan_validation",
    "resolve_reason",
    "session_ended",
    "settles",
    "standing",
    "step",
    "still_owed",
    "track_usable",
    "unusable_reason",
    "validation_of",
    "wants_account_check",
    "wants_diagnosis",
    "worst_usable",
]
