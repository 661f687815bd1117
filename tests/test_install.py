"""`make install` / `make uninstall` in a throw-away root, and the Debian-package step of `make test`.

No systemd runs here, and these tests must never touch this machine's services either: the install
goes to DESTDIR, and the package step runs with a recording `apt-get` on a PATH of its own. A
recording `systemctl` proves none is called.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

NAME = "cookie-supervisor"
PIP = Path(sys.executable).parent / "pip"


def recorder(bindir: Path, name: str, log: Path, extra: str = "") -> None:
    """A stand-in command that appends its arguments to `log` (and runs `extra`)."""
    path = bindir / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{extra}\n')
    path.chmod(0o755)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This tree as a wheel, built offline with the test venv's setuptools (from a copy)."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "src"
    copy = ["bash", str(ROOT / "scripts" / "install.sh"), "build-copy", str(tree)]
    subprocess.run(copy, check=True, timeout=60)  # the copy `make install` builds from
    # Offline: the test venv's setuptools and `wheel` (the test extra) build it.
    build = subprocess.run(
        [PIP, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", tree],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    [built] = (tmp / "dist").glob("*.whl")
    return built


def make(target: str, root: Path, wheel: Path, calls: Path) -> subprocess.CompletedProcess[str]:
    bindir = root.parent / "bin"
    bindir.mkdir(exist_ok=True)
    for tool in ("systemctl", "useradd"):
        recorder(bindir, tool, calls)
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "COOKIE_SUPERVISOR_PACKAGE": str(wheel),
        # The wheel's dependencies are not fetched here: the runtime-only rule is checked on
        # the wheel's metadata below.
        "PIP_INSTALL_OPTIONS": "--no-deps",
    }
    return subprocess.run(
        ["make", "-s", "-C", str(ROOT), target, f"DESTDIR={root}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_then_uninstall_in_a_staged_root(tmp_path: Path, wheel: Path) -> None:
    root = tmp_path / "root"
    calls = tmp_path / "calls"
    calls.touch()
    out = make("install", root, wheel, calls)
    assert out.returncode == 0, out.stdout + out.stderr

    opt = root / "opt" / NAME
    unit = root / "etc/systemd/system" / f"{NAME}.service"
    env_file = root / "etc" / NAME / f"{NAME}.env"
    link = root / "usr/local/bin" / NAME
    assert unit.read_text() == (ROOT / "systemd" / f"{NAME}.service").read_text()
    assert env_file.read_text() == (ROOT / "systemd" / f"{NAME}.env.example").read_text()
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert os.readlink(link) == f"/opt/{NAME}/.venv/bin/{NAME}"  # the final path, not DESTDIR's
    assert (opt / ".venv/bin" / NAME).exists() and (opt / "README.md").exists()
    venv_python = opt / ".venv/bin/python"
    version = subprocess.run(
        [venv_python, "-c", "import cookie_supervisor; print(cookie_supervisor.__version__)"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert version.stdout.strip() and version.returncode == 0, version.stderr
    # build_info's revision where there is no .git: the one the build copy recorded
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    [revision] = (opt / ".venv").glob("lib/python*/site-packages/cookie_supervisor/REVISION")
    assert revision.read_text().strip() == head  # what app._revision() reads when installed
    # Runtime dependencies only: the test and lint tools never reach /opt.
    requires = subprocess.run(
        [venv_python, "-c", f"import importlib.metadata as m; print(m.requires('{NAME}'))"],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    runtime = [r for r in requires.split("', '") if "extra ==" not in r]
    assert any("yt-dlp" in r for r in runtime) and not any("pytest" in r for r in runtime)
    assert not list((opt / ".venv").glob("lib/python*/site-packages/pytest"))
    assert "DESTDIR set: not creating the system user" in out.stderr
    assert calls.read_text() == "", "systemctl or useradd ran under DESTDIR"

    # A second install keeps the operator's settings.
    env_file.write_text("REDIS_URL=redis://10.0.0.5:6379\n")
    again = make("install", root, wheel, calls)
    assert again.returncode == 0, again.stdout + again.stderr
    assert env_file.read_text() == "REDIS_URL=redis://10.0.0.5:6379\n"
    assert "kept" in again.stderr

    state = root / "var/lib" / NAME
    state.mkdir(parents=True)
    (state / "state.json").write_text("{}")
    gone = make("uninstall", root, wheel, calls)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not unit.exists() and not link.is_symlink() and not opt.exists()
    assert env_file.read_text() == "REDIS_URL=redis://10.0.0.5:6379\n"  # config kept
    assert (state / "state.json").exists()  # state kept
    assert calls.read_text() == ""


# --- scripts/system-deps.sh: what `make test` installs, and how ----------------------------

DEPS = ROOT / "scripts" / "system-deps.sh"
# The commands system-deps.sh itself needs, and nothing it looks for.
BASICS = ("bash", "python3", "id", "chmod", "rm", "cat", "sh")


def isolated_path(tmp_path: Path, present: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """A PATH holding only the basics, a recording apt-get, and stand-ins for `present`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in BASICS:
        # python3 may be a pyenv shim: link the interpreter itself.
        found = os.path.realpath(sys.executable) if tool == "python3" else shutil.which(tool)
        assert found, tool
        (bindir / tool).symlink_to(found)
    log = tmp_path / "apt.log"
    policy = tmp_path / "policy-rc.d"
    # While apt-get runs, record what policy-rc.d answers for a start.
    recorder(bindir, "apt-get", log, f'{policy} x start; echo "policy-rc.d $?" >> {log}')
    for tool in present:
        recorder(bindir, tool, tmp_path / "unused.log")
    return bindir, log


def deps(mode: str, bindir: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": str(bindir), "POLICY_RC_D": str(tmp_path / "policy-rc.d"), "HOME": "/"}
    return subprocess.run(
        [str(bindir / "bash"), str(DEPS), mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


JOURNAL_REMOTE = ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")


def test_missing_packages_are_installed_with_service_starts_forbidden(tmp_path: Path) -> None:
    bindir, log = isolated_path(tmp_path)
    out = deps("test", bindir, tmp_path)
    if os.geteuid() != 0:
        assert out.returncode == 1 and "run as root" in out.stderr and not log.exists()
        return
    assert out.returncode == 0, out.stderr
    lines = log.read_text().splitlines()
    assert lines[0] == "apt-get update -qq"
    [install] = [line for line in lines if line.startswith("apt-get install")]
    installed = set(install.split()) - {
        "apt-get",
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
    }
    expected = {"redis-server", "prometheus", "prometheus-alertmanager", "nodejs", "npm"}
    if not any(os.access(p, os.X_OK) for p in JOURNAL_REMOTE):
        expected.add("systemd-journal-remote")
    assert installed == expected
    assert "policy-rc.d 101" in lines  # starts were forbidden while apt-get ran...
    assert not (tmp_path / "policy-rc.d").exists()  # ...and the file is gone after


def test_nothing_happens_when_the_binaries_are_there(tmp_path: Path) -> None:
    present = ("redis-server", "promtool", "amtool", "node", "npm", "wrk")
    bindir, log = isolated_path(tmp_path, present)
    assert any(os.access(p, os.X_OK) for p in JOURNAL_REMOTE), "make test installs it"
    out = deps("bench", bindir, tmp_path)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert not log.exists() and not (tmp_path / "policy-rc.d").exists()


def test_an_existing_policy_rc_d_is_left_alone(tmp_path: Path) -> None:
    bindir, log = isolated_path(tmp_path)
    policy = tmp_path / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 0\n")
    policy.chmod(0o755)
    out = deps("run", bindir, tmp_path)
    if os.geteuid() == 0:
        assert out.returncode == 0, out.stderr
        assert "redis-server" in log.read_text() and "policy-rc.d 0" in log.read_text()
    assert policy.read_text() == "#!/bin/sh\nexit 0\n"


def test_no_make_target_or_script_calls_systemctl_but_install() -> None:
    for path in [ROOT / "Makefile", ROOT / ".ci/run", *(ROOT / "scripts").iterdir()]:
        if path.name == "install.sh":
            continue
        assert "systemctl" not in path.read_text().replace("systemctl is never called", ""), path
    install = (ROOT / "scripts/install.sh").read_text()
    assert "systemctl disable" not in install.replace("systemctl disable --now $name first", "")
    assert "systemctl stop" not in install and "systemctl start" not in install
