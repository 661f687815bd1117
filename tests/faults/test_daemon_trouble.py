"""The daemon's own disk and descriptor trouble during a validation is no verdict about the cookies.

A full TMPDIR (ENOSPC), RLIMIT_FSIZE (EFBIG), no descriptors left (EMFILE), an I/O error: the probe
could not run, which says nothing about the jar. No failed validation is booked, no
CookieValidationFailing, no `validation_failed` webhook; `cookie_supervisor_probe_errors_total`
counts it. Each limit is a real one, set on a real process.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from tests.support import Daemon, Receiver, cookie_jar, daemon_env, wait_for, write_atomic

FAKE = Path(__file__).resolve().parents[1] / "fakes" / "fake_ytdlp.py"
URL = "http://127.0.0.1:9/v.mp4"  # not YouTube: no JavaScript runtime needed


def big_jar(path: Path, size: int) -> None:
    """A valid, logged-in jar of at least `size` bytes (comment lines pad it)."""
    padding = tuple("# " + "p" * 1000 for _ in range(size // 1000 + 1))
    write_atomic(path, cookie_jar(extra_lines=padding))


def probe_under(limit: str, jar: Path, copies: Path) -> dict[str, object]:
    """run_probe in a child process that has hit `limit` (fsize or nofile)."""
    script = textwrap.dedent(
        f"""
        import asyncio, json, os, resource, sys
        from pathlib import Path
        from cookie_supervisor.probe import run_probe

        async def main():
            if {limit!r} == "fsize":
                resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
            else:  # leave one descriptor: the copy opens one at a time, the pipes need two
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
                held = []
                try:
                    while True:
                        held.append(os.open("/dev/null", os.O_RDONLY))
                except OSError:
                    os.close(held.pop())
            r = await run_probe(
                Path({str(jar)!r}), {URL!r}, command=[sys.executable, {str(FAKE)!r}, "ok"],
                copy_dir=Path({str(copies)!r}), timeout=10,
            )
            print(json.dumps({{"ok": r.ok, "os_error": r.os_error, "message": r.message}}))

        asyncio.run(main())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return dict(json.loads(out.stdout))


def test_a_file_size_limit_while_copying_the_jar_is_efbig_no_verdict(tmp_path: Path) -> None:
    jar, copies = tmp_path / "cookies.txt", tmp_path / "copies"
    copies.mkdir()
    big_jar(jar, 16_384)
    r = probe_under("fsize", jar, copies)
    assert r["ok"] is False and r["os_error"] == "EFBIG", r
    assert list(copies.iterdir()) == []  # the half-written copy went with its directory


def test_no_descriptor_left_for_the_child_is_emfile_no_verdict(tmp_path: Path) -> None:
    jar, copies = tmp_path / "cookies.txt", tmp_path / "copies"
    copies.mkdir()
    write_atomic(jar, cookie_jar())
    r = probe_under("nofile", jar, copies)
    assert r["ok"] is False and r["os_error"] == "EMFILE", r
    assert list(copies.iterdir()) == []


def test_a_missing_command_is_still_a_verdict(tmp_path: Path) -> None:
    """A wrong yt-dlp command is a setting to fix, shown as a failing validation (not hidden)."""
    import asyncio

    from cookie_supervisor.probe import run_probe

    jar = tmp_path / "cookies.txt"
    write_atomic(jar, cookie_jar())
    r = asyncio.run(run_probe(jar, URL, command=[str(tmp_path / "no-such-yt-dlp")]))
    assert r.ok is False and r.os_error is None


def test_the_daemon_books_no_failure_and_sends_no_webhook_for_its_own_efbig(
    redis_url: str, tmp_path: Path, receivers: Callable[..., Receiver]
) -> None:
    jar = tmp_path / "cookies.txt"
    big_jar(jar, 256 * 1024)
    hook = receivers()
    cfg = tmp_path / "source.toml"
    cfg.write_text(
        f'[[sources]]\nname = "default"\ncookies_file = "{jar}"\nvalidation_urls = ["{URL}"]\n'
        'validate_every = "0"\nmissing_grace = "0.2s"\n'
    )
    env = daemon_env(
        redis_url,
        jar,
        COOKIE_SUPERVISOR_YT_DLP_COMMAND=f"{sys.executable},{FAKE},ok",
        COOKIE_SUPERVISOR_WEBHOOK_URL=hook.url(),
    )
    env.pop("YT_DLP_COOKIES_FILE")
    d = Daemon(env=env, args=["--config", str(cfg)]).start()
    try:
        assert d.proc is not None
        runs = "cookie_supervisor_validation_runs_total"

        def booked() -> float:
            text = d.metrics()
            return sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith(runs + "{")
            )

        wait_for(lambda: (d.status()["last_validation"] or {}).get("ok"), what="first validation")
        before = booked()
        # 128 KiB: the daemon's log still fits, the 256 KiB jar's copy does not
        resource.prlimit(d.proc.pid, resource.RLIMIT_FSIZE, (128 * 1024, resource.RLIM_INFINITY))
        for _ in range(3):
            answer = d.post("/api/cookies/validate").json()
            assert answer["ok"] is False and answer["read_error"] == "EFBIG", answer
        errors = "cookie_supervisor_probe_errors_total"
        assert d.metric(errors, source="default", errno="EFBIG") == 3
        assert booked() == before  # no failed validation booked
        status = d.status()
        assert status["last_validation"]["ok"] is True
        assert "no verdict" in d.log()
        # a real event afterwards reaches the receiver; nothing about validations came first
        jar.unlink()
        wait_for(lambda: any(e["event"] == "file_missing" for e in hook.events()), timeout=10)
        events = [e["event"] for e in hook.events()]
        # file_missing first; the missing jar's own refresh may follow it (refresh_enqueued), but
        # nothing about validations was ever sent
        assert events[0] == "file_missing", events
        assert not [e for e in events if e.startswith("validation")], events
    finally:
        d.stop()
