"""YouTube's JS challenges: the solver and runtime the daemon ships, found and run by the real
yt-dlp, offline (a local HTTP server, no YouTube), and what their failures mean.

Only YouTube serves a real player, so the solver is shown a "player" that is JavaScript but not
YouTube's: the real yt-dlp downloads it from 127.0.0.1, hands it to the real solver in the
shipped deno, and the solver refuses it. That is the whole path of a challenge but the answer.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cookie_supervisor import core
from cookie_supervisor.classify import Reason, classify
from cookie_supervisor.config import SourceSettings
from cookie_supervisor.probe import (
    detect_js_runtime,
    judge,
    run_probe,
    runtime_name,
    shipped_deno,
    ytdlp_args,
    ytdlp_components,
)
from tests.support import PLAYER_PATH, ROOT, MediaServer

FAKE = [sys.executable, str(ROOT / "tests" / "fakes" / "fake_ytdlp.py")]
YOUTUBE = "https://www.youtube.com/watch?v=jNQXAC9IVRw"
SOLVER = importlib.metadata.version("yt-dlp-ejs")

# One n challenge through yt-dlp's own challenge director, as its YouTube extractor sends it.
SOLVE = r"""
import sys
runtime, solver, player = sys.argv[1:4]
if solver == "without":
    sys.modules["yt_dlp_ejs"] = None  # as if yt-dlp were installed without [default]
from yt_dlp import YoutubeDL
from yt_dlp.extractor.youtube.jsc._director import initialize_jsc_director
from yt_dlp.extractor.youtube.jsc.provider import (
    JsChallengeRequest, JsChallengeType, NChallengeInput,
)
name, _, path = runtime.partition(":")
params = {"verbose": True, "no_color": True, "cachedir": False,
          "js_runtimes": {name: {"path": path or None}}}
with YoutubeDL(params) as ydl:
    director = initialize_jsc_director(ydl.get_info_extractor("Youtube"))
    request = JsChallengeRequest(
        JsChallengeType.N, NChallengeInput(player, ["abcdefgh"]), "jNQXAC9IVRw")
    print("solved:", len(director.bulk_solve([request])))
"""


def shipped_runtime() -> str:
    runtime = detect_js_runtime("auto")
    assert runtime is not None and runtime_name(runtime) == "deno", runtime
    return runtime


def solve(runtime: str, solver: str, player: str, tmp_path: Path) -> str:
    env = {**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", SOLVE, runtime, solver, player],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert "solved: 0" in out.stdout  # a player that is not YouTube's has no answer
    return out.stdout + out.stderr  # yt-dlp's notes go to stdout, debug lines to stderr


def warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("WARNING:")]


def test_the_shipped_deno_is_installed_and_chosen() -> None:
    shipped = shipped_deno()
    assert shipped is not None and Path(shipped).is_file() and os.access(shipped, os.X_OK)
    version = subprocess.run([shipped, "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith(f"deno {importlib.metadata.version('deno')} ")
    # auto: deno from PATH first, else the shipped one (never Node.js 20, which yt-dlp refuses)
    expected = "deno" if shutil.which("deno") else f"deno:{shipped}"
    assert detect_js_runtime("auto") == expected
    assert detect_js_runtime("deno") == expected  # a bare `deno` falls back to the shipped one
    assert detect_js_runtime("none") is None


def test_real_ytdlp_verbose_finds_the_shipped_runtime_and_solver(
    media: MediaServer, jar: Path, tmp_path: Path
) -> None:
    """The probe's own arguments, the real yt-dlp, --verbose, offline."""
    runtime = shipped_runtime()
    copy = tmp_path / "copy.txt"
    shutil.copyfile(jar, copy)
    argv = [
        sys.executable,
        "-m",
        "yt_dlp",
        *ytdlp_args(copy, media.url(), "download", runtime, tmp_path / "cache"),
    ]
    assert "--verbose" not in argv and "-v" in argv  # -v is yt-dlp's --verbose
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    header = out.stderr
    assert f"'--no-js-runtimes', '--js-runtimes', '{runtime}'" in header  # exactly this runtime
    runtime_line = next(ln for ln in header.splitlines() if ln.startswith("[debug] JS runtimes:"))
    assert runtime_line.startswith("[debug] JS runtimes: deno-"), runtime_line
    assert "unsupported" not in runtime_line
    if not shutil.which("deno"):
        deno_version = importlib.metadata.version("deno")
        assert runtime_line == f"[debug] JS runtimes: deno-{deno_version}"
    libraries = next(ln for ln in header.splitlines() if "Optional libraries:" in ln)
    assert f"yt_dlp_ejs-{SOLVER}" in libraries
    # what build_info reports comes from the same header
    found = ytdlp_components((), runtime)
    assert found.solver == SOLVER and found.runtime == runtime_line.rpartition("deno-")[2]
    assert not media.requests or all(p.startswith("/video.mp4") for p, _ in media.requests)


def test_real_solver_runs_in_the_shipped_runtime(media: MediaServer, tmp_path: Path) -> None:
    """A challenge goes from yt-dlp through the solver package into deno and back."""
    log = solve(shipped_runtime(), "with", media.url(PLAYER_PATH), tmp_path)
    assert "[jsc] JS Challenge Providers: bun (unavailable), deno," in log
    assert f"Using challenge solver lib script v{SOLVER} (source: python package" in log
    assert f"Using challenge solver core script v{SOLVER} (source: python package" in log
    assert "[jsc:deno] Solving JS challenges using deno" in log
    assert "[jsc:deno] Running deno: " in log
    assert PLAYER_PATH in [path for path, _ in media.requests]  # the player, from 127.0.0.1
    # the solver itself looked at the player and refused it: yt-dlp's warning says so
    [refused] = warnings(log)
    assert refused.startswith(
        'WARNING: [youtube] [jsc] Error solving n challenge request using "deno" provider: '
        "Error running deno process (returncode: 1)"
    ), refused
    assert classify(refused).reason is Reason.JS_CHALLENGE_FAILED


def test_without_the_solver_package_yt_dlp_says_remote_components_were_skipped(
    media: MediaServer, tmp_path: Path
) -> None:
    log = solve(shipped_runtime(), "without", media.url(PLAYER_PATH), tmp_path)
    assert "yt_dlp_ejs-" not in log
    [skipped] = warnings(log)
    assert "were skipped. These may be required to solve JS challenges." in skipped, skipped
    assert classify(skipped).reason is Reason.JS_CHALLENGE_FAILED


# --- yt-dlp's texts, as the YouTube extractor prints them (2026.10.26) ----------------------------

EJS = "https://github.com/yt-dlp/yt-dlp/wiki/EJS"
HELP = (
    "Ensure you have a supported JavaScript runtime and challenge solver script distribution "
    f"installed. Review any warnings presented before this message. For more details, refer to  {EJS}"
)
N_FAILED = f"WARNING: [youtube] jNQXAC9IVRw: n challenge solving failed: Some formats may be missing. {HELP}"
SIG_FAILED = (
    f"WARNING: [youtube] jNQXAC9IVRw: Signature solving failed: Some formats may be missing. {HELP}"
)
NO_RUNTIME = (
    "WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by "
    "default; to use another runtime add  --js-runtimes RUNTIME[:PATH]  to your command/config. "
    "YouTube extraction without a JS runtime has been deprecated, and some formats may be missing. "
    f"See  {EJS}  for details on installing one"
)
REMOTE = (
    "WARNING: [youtube] [jsc] Remote component challenge solver script (deno) was skipped. It may "
    "be required to solve JS challenges. You can enable the download with  --remote-components "
    f"ejs:github  (recommended). For more information and alternatives, refer to  {EJS}"
)
NOT_AVAILABLE = (
    "ERROR: [youtube] jNQXAC9IVRw: Requested format is not available. Use --list-formats for a "
    "list of available formats"
)
ONLY_IMAGES = "WARNING: Only images are available for download. use --list-formats to see them"
POT_DEBUG = (
    "[debug] [youtube] jNQXAC9IVRw: web client https formats require a GVS PO Token which was not "
    "provided. They will be skipped as they may yield HTTP Error 403."
)


@pytest.mark.parametrize("warning", [N_FAILED, SIG_FAILED, NO_RUNTIME, REMOTE])
@pytest.mark.parametrize("then", [NOT_AVAILABLE, f"{ONLY_IMAGES}\n{NOT_AVAILABLE}"])
def test_a_missing_format_after_a_challenge_warning_is_the_challenge(
    warning: str, then: str
) -> None:
    assert classify(warning).reason is Reason.JS_CHALLENGE_FAILED
    assert not Reason.JS_CHALLENGE_FAILED.fixable
    reason, message, _ = judge(1, "", f"{warning}\n{then}")
    assert reason is Reason.JS_CHALLENGE_FAILED, message
    assert classify(f"{warning}\n{then}").reason is Reason.JS_CHALLENGE_FAILED  # a posted report


def test_a_missing_format_alone_is_not_the_challenge() -> None:
    assert judge(1, "", NOT_AVAILABLE)[0] is Reason.OTHER
    assert judge(1, "", f"{ONLY_IMAGES}\n{NOT_AVAILABLE}")[0] is Reason.OTHER
    # with the default clients' PO-token notice, that is the explanation instead
    assert judge(1, POT_DEBUG, f"{ONLY_IMAGES}\n{NOT_AVAILABLE}")[0] is Reason.PO_TOKEN_REQUIRED


def test_a_cookie_failure_beside_a_challenge_warning_stays_the_cookies() -> None:
    bot = "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. Use --cookies"
    assert judge(1, "", f"{N_FAILED}\n{bot}")[0] is Reason.BOT_DETECTION
    rotated = (
        "WARNING: [youtube] The provided YouTube account cookies are no longer valid. They have "
        "likely been rotated in the browser as a security measure."
    )
    assert judge(1, "", f"{rotated}\n{N_FAILED}\n{NOT_AVAILABLE}")[0] is Reason.COOKIES_ROTATED
    # a challenge warning on a run that still found a format is no failure
    assert judge(0, "", N_FAILED)[0] is None


async def test_the_probe_reports_the_challenge(jar: Path) -> None:
    r = await run_probe(jar, YOUTUBE, command=[*FAKE, "nchallenge"], js_runtime="deno")
    assert (r.ok, r.reason, r.fixable) == (False, Reason.JS_CHALLENGE_FAILED, False), r
    assert "n challenge solving failed" in r.message


@pytest.mark.parametrize("origin", ["api", "report", "validation"])
def test_a_challenge_failure_makes_no_job(origin: str, jar: Path) -> None:
    state = core.State.of([SourceSettings(name="main", cookies_file=jar).policy()])
    state.redis_up = True
    src = state.sources["main"]
    if origin == "validation":
        v = core.Validation(False, Reason.JS_CHALLENGE_FAILED, 0.0, 1.0, "schedule")
        fx = core.step(state, core.ValidationFinished("main", v), 1.0)
    else:
        text = f"{N_FAILED}\n{NOT_AVAILABLE}"
        reason = core.resolve_reason("download_failed", text)
        assert reason is Reason.JS_CHALLENGE_FAILED
        ask = core.RefreshAsked("main", reason, origin, error=text)  # type: ignore[arg-type]
        fx = core.step(state, ask, 1.0)
        [answer] = [e for e in fx if isinstance(e, core.Answer)]
        assert answer.state == "ignored" and not answer.triggered
    assert not [e for e in fx if isinstance(e, core.Enqueue)]
    assert core.need(src, 2.0) is None
