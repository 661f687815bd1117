"""`make install` / `make uninstall` in a throw-away root, and the Debian-package step of `make test`.

No systemd runs here, and these tests must never touch this machine's services either: the install
goes to DESTDIR, and the package step runs with a recording `apt-get` on a PATH of its own. A
recording `systemctl` proves none is called. The installed command is started the way the unit
starts it — at its final path, as the service user, with /root and /home hidden (ProtectHome=yes) —
inside a private mount namespace (`unshare --mount`): the staged tree bound onto /opt, the user
added to a copy of /etc/passwd bound over the real one. All of it ends with the process; the
machine's /opt, /etc/passwd and users are never changed.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, cookie_jar, free_port, wait_for

NAME = "cookie-supervisor"
PIP = Path(sys.executable).parent / "pip"
HIDDEN = ("/root", "/home")  # what ProtectHome=yes hides from the service
SERVICE_UID = 61999  # the service user inside the namespace; no such user on the machine


def hidden(path: str) -> bool:
    return any(path == h or path.startswith(h + "/") for h in HIDDEN)


@functools.cache
def system_python() -> str:
    """A Python the service user can run, of this interpreter's version (the installed command
    borrows this test venv's dependencies: nothing is downloaded). This machine's `python3` is
    pyenv's, under /root; Debian's is /usr/bin/python3."""
    mine = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (
        getattr(sys, "_base_executable", ""),
        "/usr/bin/python3",
        "/usr/local/bin/python3",
    ):
        real = os.path.realpath(candidate) if candidate else ""
        if not real or hidden(candidate) or hidden(real) or not os.access(real, os.X_OK):
            continue
        out = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if out.stdout.strip() == mine:
            return candidate
    raise AssertionError(f"no Python {mine} outside /root and /home to install with")


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
        [PIP, "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", tmp / "dist", tree],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    # setuptools' deprecation banner (it printed three times per install) says the metadata
    # uses a form the next setuptools refuses: none may appear.
    assert "Deprecat" not in build.stdout + build.stderr, build.stdout + build.stderr
    [built] = (tmp / "dist").glob("*.whl")
    return built


def make(
    target: str, root: Path, wheel: Path, calls: Path, python: str | None = None
) -> subprocess.CompletedProcess[str]:
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
        [
            "make",
            "-s",
            "-C",
            str(ROOT),
            target,
            f"DESTDIR={root}",
            f"PYTHON={python or system_python()}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_install_then_uninstall_in_a_staged_root(
    tmp_path: Path, wheel: Path, redis_url: str
) -> None:
    root = tmp_path / "root"
    calls = tmp_path / "calls"
    calls.touch()
    out = make("install", root, wheel, calls)
    assert out.returncode == 0, out.stdout + out.stderr
    assert_names_only_final_paths(root)
    start_as_the_service_user(root, tmp_path, redis_url)

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
    assert_names_only_final_paths(root)  # an upgrade in place is relocated too

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
    present = ("redis-server", "promtool", "prometheus", "amtool", "prometheus-alertmanager")
    present += ("node", "npm", "wrk")
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


# --- an install that runs --------------------------------------------------------------------


def assert_names_only_final_paths(root: Path) -> None:
    """Nothing in the staged tree names the staging path: not a script's #! line, not `activate`,
    not pyvenv.cfg, not the bytecode (a traceback's file names), not a link."""
    staged = str(root).encode()
    named = []
    for top, _dirs, files in os.walk(root):
        for name in files:
            path = Path(top) / name
            if path.is_symlink():
                if staged in os.fsencode(os.readlink(path)):
                    named.append(path)
            elif staged in path.read_bytes():
                named.append(path)
    assert named == [], f"{len(named)} files name {root}, e.g. {named[:5]}"
    venv = root / "opt" / NAME / ".venv"
    final = f"/opt/{NAME}/.venv"
    script = (venv / "bin" / NAME).read_text()
    assert script.startswith(f"#!{final}/bin/python"), script[:100]
    assert f"VIRTUAL_ENV={final}" in (venv / "bin/activate").read_text().replace("'", "")
    [compiled] = venv.glob("lib/python*/site-packages/cookie_supervisor/__pycache__/cli.*.pyc")
    assert f"{final}/lib/".encode() in compiled.read_bytes()


def namespace(script: str, **popen: object) -> subprocess.Popen[str]:
    """`script` as root in a private mount namespace: its mounts end with it."""
    assert os.geteuid() == 0, "make install runs as root, and so does its test"
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-ec", script],
        text=True,
        **popen,  # type: ignore[call-overload]
    )


def start_as_the_service_user(root: Path, tmp_path: Path, redis_url: str) -> None:
    """The unit's ExecStart, as its User=, with ProtectHome=yes: the daemon answers /readyz."""
    unit = (root / "etc/systemd/system" / f"{NAME}.service").read_text()
    [exec_start] = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    command = exec_start.removeprefix("ExecStart=")
    assert command == f"/opt/{NAME}/.venv/bin/{NAME} run"
    # The runtime dependencies come from this test venv (read-only, bound beside the tree):
    # the wheel was installed without them, so no download happens here.
    deps = root / "opt" / "test-deps"
    deps.mkdir()
    srv = root / "opt" / "test-srv"
    srv.mkdir()
    (srv / "cookies.txt").write_text(cookie_jar())
    (srv / "cookies.txt").chmod(0o644)  # the unit reads it with CAP_DAC_READ_SEARCH instead
    passwd, group = tmp_path / "passwd", tmp_path / "group"
    user = f"{NAME}:x:{SERVICE_UID}:{SERVICE_UID}:cookie-supervisor daemon:/nonexistent:"
    passwd.write_text(Path("/etc/passwd").read_text() + user + "/usr/sbin/nologin\n")
    group.write_text(Path("/etc/group").read_text() + f"{NAME}:x:{SERVICE_UID}:\n")
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": "/opt/test-deps",
        "YT_DLP_COOKIES_FILE": "/opt/test-srv/cookies.txt",
        "REDIS_URL": redis_url,
        "COOKIE_SUPERVISOR_LISTEN": f"127.0.0.1:{port}",
        "COOKIE_SUPERVISOR_VALIDATION_URLS": "none",
        "COOKIE_SUPERVISOR_JS_RUNTIME": "none",
    }
    as_user = f"setpriv --reuid {NAME} --regid {NAME} --clear-groups env -i " + " ".join(
        f"{k}={v}" for k, v in env.items()
    )
    script = f"""
        mount --bind {root}/opt /opt
        mount --bind {sysconfig.get_paths()["purelib"]} /opt/test-deps
        mount --bind {passwd} /etc/passwd
        mount --bind {group} /etc/group
        mount -t tmpfs -o mode=0755 tmpfs /root
        mount -t tmpfs -o mode=0755 tmpfs /home
        {as_user} /opt/{NAME}/.venv/bin/python -c \
            'import cookie_supervisor, os; print(os.getuid(), cookie_supervisor.__file__)'
        exec {as_user} {command}
    """
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = namespace(script, stdout=out, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"exited {proc.returncode}: {log.read_text()}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, timeout=30, what="the installed daemon's /readyz")
        first = log.read_text().splitlines()[0]
        assert first == f"{SERVICE_UID} /opt/{NAME}/.venv/lib/python{sys.version_info[0]}." + (
            f"{sys.version_info[1]}/site-packages/cookie_supervisor/__init__.py"
        ), first
        status = Path(f"/proc/{proc.pid}/status").read_text()
        assert f"Uid:\t{SERVICE_UID}\t" in status  # the daemon itself, not a wrapper
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
    assert code == 0, log.read_text()


@pytest.mark.parametrize("home", HIDDEN)
def test_a_python_the_service_cannot_see_is_refused(tmp_path: Path, home: str) -> None:
    """pyenv under /root, a build under /home: the unit would exit 126 (ProtectHome=yes).
    Refused before anything is written, with the reason and the fix."""
    root = tmp_path / "root"
    python = f"{home}/dev/.pyenv/shims/python3"
    # A tmpfs on `home` in the namespace: the machine's own /root or /home is not written.
    script = f"""
        mount -t tmpfs tmpfs {home}
        mkdir -p {home}/dev/.pyenv/shims
        ln -s {os.path.realpath(system_python())} {python}
        exec make -s -C {ROOT} install DESTDIR={root} PYTHON={python}
    """
    proc = namespace(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, out + err
    assert (
        f"{NAME}: refusing to install with {python}: {python} is under {home}, which"
        " ProtectHome=yes hides from the service (the unit would exit 126)"
    ) in err
    assert f"{NAME}: fix: make install PYTHON=/usr/bin/python3" in err
    assert not root.exists()


def test_a_python_other_users_cannot_read_is_refused(tmp_path: Path, wheel: Path) -> None:
    private = tmp_path / "private"  # under pytest's 0700 directory
    private.mkdir(mode=0o700)
    (private / "python3").symlink_to(os.path.realpath(system_python()))
    calls = tmp_path / "calls"
    out = make("install", tmp_path / "root", wheel, calls, python=str(private / "python3"))
    assert out.returncode != 0
    assert "is not readable by other users (mode drwx------)" in out.stderr, out.stderr
    assert "fix: make install PYTHON=" in out.stderr
    assert not (tmp_path / "root").exists()


# --- make clean -------------------------------------------------------------------------------


def daemonized_redis(var: Path) -> int:
    """A redis-server started the way scripts/run-dev.sh starts it; its pid."""
    var.mkdir(parents=True, exist_ok=True)
    port = free_port()
    files = ["--dir", str(var), "--pidfile", str(var / "redis.pid"), "--logfile", str(var / "x")]
    options = ["--save", "", "--appendonly", "no", "--daemonize", "yes"]
    subprocess.run(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *files, *options],
        check=True,
        timeout=30,
    )
    return int(wait_for(lambda: (var / "redis.pid").read_text().strip(), what="redis.pid"))


def alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_make_clean_stops_the_private_redis_and_only_it(tmp_path: Path) -> None:
    # A copy of the clone's make side: `make clean` here must not remove the suite's own .venv.
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", clone)
    shutil.copy(ROOT / "scripts" / "run-dev.sh", clone / "scripts")
    ours = daemonized_redis(clone / "var")
    other = daemonized_redis(tmp_path / "elsewhere" / "var")  # another clone's, say
    try:
        out = subprocess.run(
            ["make", "-s", "-C", str(clone), "clean"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert f"stopped the private redis-server (pid {ours})" in out.stderr
        assert not alive(ours) and not (clone / "var").exists()
        assert alive(other)
        # A stale pidfile naming a live process that is not ours is left alone.
        (clone / "var").mkdir()
        (clone / "var" / "redis.pid").write_text(f"{other}\n")
        out = subprocess.run(
            ["make", "-s", "-C", str(clone), "clean"], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0 and "stopped" not in out.stderr, out.stderr
        assert alive(other) and not (clone / "var").exists()
    finally:
        for pid in (ours, other):
            if alive(pid):
                os.kill(pid, signal.SIGTERM)
