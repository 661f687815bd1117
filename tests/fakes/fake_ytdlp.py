"""A stand-in for yt-dlp where only YouTube can produce the text: prints yt-dlp's exact messages.

    python fake_ytdlp.py SCENARIO [yt-dlp arguments...]

Like yt-dlp it rewrites the file given to --cookies (truncate, then write) on its way out. When
FAKE_RECORD names a file, it records its arguments, the cookie file's mode and its pids there.
FAKE_WITH_COOKIES / FAKE_WITHOUT_COOKIES, when set, replace SCENARIO for a run with / without
--cookies: one command answers the probe and its diagnosis run differently. `--version` prints
FAKE_VERSION (default 2026.10.26). FAKE_ACCOUNT, when set, answers runs on the account check's
liked-videos playlist.
"""

import json
import os
import subprocess
import sys
import time

HINT = (
    "Use --cookies-from-browser or --cookies for the authentication. See  "
    "https://github.com/yt-dlp/yt-dlp/wiki/FAQ#how-do-i-pass-cookies-to-yt-dlp  for how to manually "
    "pass cookies. Also see  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies"
    "  for tips on effectively exporting YouTube cookies"
)
ROTATED = (
    "WARNING: [youtube] The provided YouTube account cookies are no longer valid. They have likely "
    "been rotated in the browser as a security measure. For tips on how to effectively export "
    "YouTube cookies, refer to  https://github.com/yt-dlp/yt-dlp/wiki/Extractors#exporting-youtube-cookies ."
)
ACCOUNT = "[debug] [youtube] Found YouTube account cookies"
VIDEO = "jNQXAC9IVRw"
POT_GUIDE = "https://github.com/yt-dlp/yt-dlp/wiki/PO-Token-Guide"
# The default clients' PO-token notice: debug-only, so seen only under -v.
POT_DEBUG = (
    f"[debug] [youtube] {VIDEO}: web client https formats require a GVS PO Token which was not "
    "provided. They will be skipped as they may yield HTTP Error 403. You can manually pass a GVS "
    'PO Token for this client with --extractor-args "youtube:po_token=web.gvs+XXX". For more '
    f"information, refer to  {POT_GUIDE}"
)
NOT_AVAILABLE = (
    f"ERROR: [youtube] {VIDEO}: Requested format is not available. Use --list-formats for a list "
    "of available formats"
)
LL = "https://www.youtube.com/playlist?list=LL"
NO_PLAYLIST = "ERROR: [youtube:tab] LL: YouTube said: The playlist does not exist."
# scenario: (stdout lines, stderr lines, exit code)
SCENARIOS = {
    "ok": ([ACCOUNT, "[info] jNQXAC9IVRw: Downloading 1 format(s): 249"], [], 0),
    "bot": (
        [ACCOUNT],
        ["ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm you’re not a bot. " + HINT],
        1,
    ),
    "rotated": ([ACCOUNT, "[info] jNQXAC9IVRw: Downloading 1 format(s): 249"], [ROTATED], 0),
    "age": (
        [],
        [
            "ERROR: [youtube] jNQXAC9IVRw: Sign in to confirm your age. This video may be inappropriate for some users. "
            + HINT
        ],
        1,
    ),
    "ratelimit": (
        [ACCOUNT],
        [
            "ERROR: [youtube] jNQXAC9IVRw: Video unavailable. This content isn't available, try again later. Your account has been rate-limited by YouTube for up to an hour."
        ],
        1,
    ),
    "nojs": (
        [],
        [
            "WARNING: [youtube] No supported JavaScript runtime could be found. Only deno is enabled by default; to use another runtime add  --js-runtimes RUNTIME[:PATH]",
            "ERROR: [youtube] jNQXAC9IVRw: Requested format is not available. Use --list-formats for a list of available formats",
        ],
        1,
    ),
    "nchallenge": (
        [ACCOUNT, f"[youtube] {VIDEO}: Downloading player 0123abcd-main"],
        [
            f"WARNING: [youtube] {VIDEO}: n challenge solving failed: Some formats may be missing. Ensure you have a supported JavaScript runtime and challenge solver script distribution installed. Review any warnings presented before this message. For more details, refer to  https://github.com/yt-dlp/yt-dlp/wiki/EJS",
            "WARNING: Only images are available for download. use --list-formats to see them",
            NOT_AVAILABLE,
        ],
        1,
    ),
    "leaky": (
        [ACCOUNT, "[debug] Cookie: SID=SeCrEtVaLuE-sid; LOGIN_INFO=SeCrEtVaLuE-login"],
        [
            "ERROR: [youtube] x: HTTP Error 403: Forbidden; Cookie: SID=SeCrEtVaLuE-sid; LOGIN_INFO=SeCrEtVaLuE-login"
        ],
        1,
    ),
    "silent_fail": ([], [], 2),
    "po_token": (
        [ACCOUNT, POT_DEBUG.replace("web client", "tv_samsung client"), POT_DEBUG],
        [
            "WARNING: Only images are available for download. use --list-formats to see them",
            NOT_AVAILABLE,
        ],
        1,
    ),
    "ip_blocked": (
        [ACCOUNT],
        [
            f'WARNING: [youtube] Skipping player responses from android_vr clients (got player responses for video "aQvGIIdgFDM" instead of "{VIDEO}")',
            f"ERROR: [youtube] {VIDEO}: All player responses are invalid. Your IP is likely being blocked by Youtube",
        ],
        1,
    ),
    "media_403": (
        [ACCOUNT, f"[info] {VIDEO}: Downloading 1 format(s): 249", "[info] Testing format 249"],
        ["WARNING: Unable to download format 249. Skipping...", NOT_AVAILABLE],
        1,
    ),
    "skip_client": (
        [ACCOUNT, f"[info] {VIDEO}: Downloading 1 format(s): 249"],
        ['WARNING: [youtube] Skipping client "android" since it does not support cookies'],
        0,
    ),
    # the account check: `--flat-playlist -I 1` on the liked-videos playlist
    "ll_ok": (
        [
            ACCOUNT,
            f"[youtube:tab] Extracting URL: {LL}",
            "[youtube:tab] LL: Downloading webpage",
            "[download] Downloading playlist: Liked videos",
            "[youtube:tab] Playlist Liked videos: Downloading 1 items of 1",
            "[download] Downloading item 1 of 1",
            "[download] Finished downloading playlist: Liked videos",
        ],
        [],
        0,
    ),
    "ll_rotated": ([ACCOUNT, f"[youtube:tab] Extracting URL: {LL}"], [ROTATED, NO_PLAYLIST], 1),
    "ll_missing": ([f"[youtube:tab] Extracting URL: {LL}"], [NO_PLAYLIST], 1),
}


def escape() -> int:
    """Double-fork a `sleep` into a session of its own, holding our stdout and stderr: killing our
    process group does not reach it, and the pipes stay open as long as it lives."""
    read_end, write_end = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.write(write_end, str(os.getpid()).encode())
            os.execvp("sleep", ["sleep", os.environ.get("FAKE_ESCAPE_SECONDS", "30")])  # noqa: S606
        os._exit(0)
    os.close(write_end)
    pid = int(os.read(read_end, 32))
    os.close(read_end)
    return pid


def main() -> int:
    scenario, args = sys.argv[1], sys.argv[2:]
    if "--version" in args:
        print(os.environ.get("FAKE_VERSION", "2026.10.26"))
        return 0
    cookies = args[args.index("--cookies") + 1] if "--cookies" in args else None
    case = os.environ.get("FAKE_WITH_COOKIES" if cookies else "FAKE_WITHOUT_COOKIES")
    if args and args[-1] == LL and os.environ.get("FAKE_ACCOUNT"):
        case = os.environ["FAKE_ACCOUNT"]  # the account check has an answer of its own
    scenario = case or scenario
    record = {
        "args": args,
        "pid": os.getpid(),
        "mode": oct(os.stat(cookies).st_mode & 0o777) if cookies else None,
    }
    if scenario == "hang":  # a child of its own too, as yt-dlp's JS runtime would be
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        record["child"] = child.pid
    if scenario.startswith("escape"):  # "escape_hang": then hang; "escape_ok": then succeed
        record["escaped"] = escape()
    if path := os.environ.get("FAKE_RECORD"):
        # whole or not at all: a test waits for the file to exist, then kills us and reads it
        with open(path + ".part", "w") as fh:
            json.dump(record, fh)
        os.replace(path + ".part", path)
    if scenario in ("hang", "escape_hang"):
        time.sleep(600)
    out, err, code = SCENARIOS[scenario.removeprefix("escape_")]
    for line in out:
        if line != ACCOUNT or cookies:  # no --cookies, no account cookies found
            print(line)
    for line in err:
        print(line, file=sys.stderr)
    if cookies:  # yt-dlp's save on exit: truncate and rewrite
        with open(cookies, "w") as fh:
            fh.write(
                "# Netscape HTTP Cookie File\n# This file is generated by yt-dlp.  Do not edit.\n\n"
            )
    return code


if __name__ == "__main__":
    raise SystemExit(main())
