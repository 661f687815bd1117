"""The shipped systemd unit: hardened enough, and free of anything `verify` would say."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from cookie_supervisor.config import ENV_PREFIX, Settings
from tests.support import ROOT

UNIT = ROOT / "systemd" / "cookie-supervisor.service"
ENV_EXAMPLE = ROOT / "systemd" / "cookie-supervisor.env.example"
MAX_EXPOSURE = 1.5
ANALYZE = shutil.which("systemd-analyze")


def test_exposure_is_at_most_1_5() -> None:
    assert ANALYZE, "systemd-analyze is not installed"
    out = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out.stdout)
    assert match, out.stdout + out.stderr
    exposure = float(match.group(1))
    print(f"systemd-analyze security: exposure {exposure}")
    assert exposure <= MAX_EXPOSURE


def test_verify_prints_nothing(tmp_path: Path) -> None:
    """`verify` exits 0 even on typos, so any output at all is a failure."""
    assert ANALYZE, "systemd-analyze is not installed"
    binary = Path(sys.executable).parent / "cookie-supervisor"
    assert binary.exists(), "the console script is not installed"
    unit = tmp_path / UNIT.name
    text = UNIT.read_text()
    assert "ExecStart=/opt/cookie-supervisor/.venv/bin/cookie-supervisor run" in text
    unit.write_text(text.replace("/opt/cookie-supervisor/.venv/bin/cookie-supervisor", str(binary)))
    out = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.stdout + out.stderr == "", out.stdout + out.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
    typo = subprocess.run(
        [ANALYZE, "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert "ProtectSytem" in typo.stdout + typo.stderr  # the check can fail


def test_unit_keeps_the_traps_out() -> None:
    directives = dict(
        line.split("=", 1)
        for line in UNIT.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert directives["Type"] == "notify" and directives["NotifyAccess"] == "main"
    assert directives["WatchdogSec"] and directives["Restart"] == "on-failure"
    assert directives["CacheDirectory"] == "cookie-supervisor"
    assert directives["User"] == "cookie-supervisor"
    assert "ProcSubset" not in directives  # would hide /proc/stat: no process_* metrics
    assert "MemoryDenyWriteExecute" not in directives  # would break the JS runtime's JIT


def test_env_example_names_real_settings() -> None:
    names = {
        line.lstrip("#").split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"^#?[A-Z_]+=", line)
    }
    known = {"REDIS_URL", "YT_DLP_COOKIES_FILE"} | {
        ENV_PREFIX + f.upper() for f in Settings.model_fields
    }
    assert names and names <= known, names - known
