"""The shipped systemd unit: hardened enough, restart-safe, and free of anything `verify` would say.

`systemd-analyze` (package systemd, which `make test` brings in with systemd-journal-remote) runs
when present; the parsed unit file is checked either way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from cookie_supervisor.config import ENV_PREFIX, Settings
from tests.support import ROOT

UNIT = ROOT / "systemd" / "cookie-supervisor.service"
ENV_EXAMPLE = ROOT / "systemd" / "cookie-supervisor.env.example"
MAX_EXPOSURE = 1.5
ANALYZE = shutil.which("systemd-analyze")


def parse(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections → directive → every value given (systemd allows repeats)."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key.strip()].append(value.strip())
    return sections


SERVICE = parse(UNIT.read_text())["Service"]


def one(key: str) -> str:
    [value] = SERVICE[key]
    return value


def test_restart_policy_and_limits() -> None:
    assert one("Restart") == "on-failure"
    assert one("RestartPreventExitStatus") == "2"  # config error: exit 2, no restart loop
    assert one("LimitNOFILE") == "65536"
    assert one("Type") == "notify" and one("NotifyAccess") == "main"
    assert one("WatchdogSec")


def test_directories_are_systemds_and_private() -> None:
    for kind in ("State", "Cache", "Runtime"):
        assert one(f"{kind}Directory") == "cookie-supervisor", kind
        assert one(f"{kind}DirectoryMode") == "0700", kind
    assert one("UMask") == "0077"


def test_hardening_is_kept() -> None:
    expected = {
        "User": "cookie-supervisor",
        "CapabilityBoundingSet": "CAP_DAC_READ_SEARCH",
        "AmbientCapabilities": "CAP_DAC_READ_SEARCH",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces": "yes",
        "SystemCallArchitectures": "native",
    }
    assert {k: one(k) for k in expected} == expected
    assert "@system-service" in SERVICE["SystemCallFilter"]
    assert "ProcSubset" not in SERVICE  # would hide /proc/stat: no process_* metrics
    assert "MemoryDenyWriteExecute" not in SERVICE  # would break the JS runtime's JIT


def test_parser_sees_a_missing_directive() -> None:
    broken = parse(UNIT.read_text().replace("RestartPreventExitStatus=2\n", ""))["Service"]
    assert "RestartPreventExitStatus" not in broken


def test_exposure_is_at_most_1_5() -> None:
    if not ANALYZE:  # no systemd here: the hardening test above is what can be checked
        assert one("ProtectSystem") == "strict"
        return
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
    text = UNIT.read_text()
    assert "ExecStart=/opt/cookie-supervisor/.venv/bin/cookie-supervisor run" in text
    if not ANALYZE:  # without systemd: every directive at least parses as key=value
        assert all(v for values in SERVICE.values() for v in values)
        return
    binary = Path(sys.executable).parent / "cookie-supervisor"
    assert binary.exists(), "the console script is not installed"
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/opt/cookie-supervisor/.venv/bin/cookie-supervisor", str(binary)))
    out = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert out.stdout + out.stderr == "", out.stdout + out.stderr
    broken = tmp_path / "broken.service"
    broken.write_text(text.replace("ProtectSystem=strict", "ProtectSytem=strict"))
    typo = subprocess.run(
        [ANALYZE, "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert "ProtectSytem" in typo.stdout + typo.stderr  # the check can fail


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
