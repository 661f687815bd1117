#!/usr/bin/env bash
# `make install` / `make uninstall`: cookie-supervisor as a systemd service on this machine.
#
#   scripts/install.sh install|uninstall|build-copy DIR
#
# install:   system user `cookie-supervisor`; /opt/cookie-supervisor/.venv with the runtime
#            dependencies only; the unit in /etc/systemd/system; /etc/cookie-supervisor/
#            cookie-supervisor.env from the example (never overwritten); /usr/local/bin/
#            cookie-supervisor; `systemctl daemon-reload` when systemd runs. Nothing is enabled or
#            started: that stays the operator's `systemctl enable --now cookie-supervisor`.
# uninstall: removes the unit, the venv and the command; keeps /etc/cookie-supervisor (settings,
#            token) and /var/lib/cookie-supervisor (state), and the user.
# build-copy DIR: what pip builds the package from (the tests build their wheel from it too).
#
# DESTDIR=/some/root stages everything under that root instead (packaging, and this script's
# test): no user is created and systemctl is never called. The staged tree names only final
# paths (/opt/cookie-supervisor/...): scripts, `activate`, pyvenv.cfg and the bytecode are
# rewritten from the staging path, so it runs once copied to /.
#
# The venv's interpreter must be one the service user can run: a Python under /root or /home
# (pyenv, a user's build) is refused before anything is written, with the fix, because
# ProtectHome=yes hides those directories from the service and the unit would exit 126.
# Other knobs:
#   PYTHON                  the interpreter the venv is made from (python3)
#   COOKIE_SUPERVISOR_PACKAGE  what pip installs (default: this source tree; or a built wheel)
#   PIP_INSTALL_OPTIONS     extra pip options (e.g. --no-deps with a wheel whose deps are present)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
root=${DESTDIR:-}
root=${root%/}
name=cookie-supervisor
opt=$root/opt/$name
venv=$opt/.venv
unit=$root/etc/systemd/system/$name.service
confdir=$root/etc/$name
envfile=$confdir/$name.env
bin=$root/usr/local/bin/$name
python=${PYTHON:-python3}
final_venv=/opt/$name/.venv

say() { echo "$name: $*" >&2; }

# systemd only where it runs (/run/systemd/system, as sd_booted(3) checks), never for a staged root.
systemd_reload() {
  if [ -z "$root" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say "systemctl daemon-reload done"
  else
    say "systemd not running here (or DESTDIR set): no daemon-reload"
  fi
}

ensure_user() {
  if [ -n "$root" ]; then
    say "DESTDIR set: not creating the system user $name"
  elif ! getent passwd "$name" >/dev/null; then
    useradd --system --user-group --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin --comment "cookie-supervisor daemon" "$name"
    say "created system user $name"
  fi
}

# Whether the service user could run the venv's interpreter: not hidden by ProtectHome=yes
# (/root, /home, /run/user), and readable and searchable by others all the way down (the
# service user is in no group that owns it). Prints the reason when not; Python 3.11 or newer.
python_problem() {
  "$1" - <<'EOF'
import os
import stat
import sys
import sysconfig

if sys.version_info < (3, 11):
    sys.exit(f"it is Python {sys.version.split()[0]}; cookie-supervisor needs 3.11 or newer")
base = getattr(sys, "_base_executable", "") or sys.executable
stdlib = sysconfig.get_paths()["stdlib"]
# The venv links to `base` as written, so the path itself counts, not only where it leads.
for path in dict.fromkeys([base, os.path.realpath(base), stdlib, os.path.realpath(stdlib)]):
    for hidden in ("/root", "/home", "/run/user"):
        if path == hidden or path.startswith(hidden + "/"):
            sys.exit(
                f"{path} is under {hidden}, which ProtectHome=yes hides from the service"
                " (the unit would exit 126)"
            )
    parts = path.split("/")
    for depth in range(2, len(parts) + 1):
        here = "/".join(parts[:depth])
        mode = os.stat(here).st_mode
        need = stat.S_IXOTH | (stat.S_IROTH if here == path else 0)
        if mode & need != need:
            sys.exit(f"{here} is not readable by other users (mode {stat.filemode(mode)})")
EOF
}

# Refuse, with the reason and the fix, an interpreter the service could not run.
check_python() {
  local py=$python why
  if [ -x "$venv/bin/python" ]; then
    py=$venv/bin/python
  elif ! command -v "$python" >/dev/null; then
    say "no $python: set PYTHON=/path/to/python3 (3.11 or newer)"
    exit 1
  fi
  if ! why=$(python_problem "$py" 2>&1); then
    say "refusing to install with $py: $why"
    if [ "$py" = "$venv/bin/python" ]; then
      say "fix: rm -rf $venv, then make install PYTHON=/usr/bin/python3 (a system Python)"
    else
      say "fix: make install PYTHON=/usr/bin/python3 (a system Python; Debian: apt-get install python3-venv)"
    fi
    exit 1
  fi
}

# Under DESTDIR the venv is built at its staging path: every text file that names that path
# (scripts' #! lines, activate*, pyvenv.cfg) is rewritten to the final one, and the bytecode is
# compiled as if from there (tracebacks name the final path).
relocate_venv() {
  if [ "$venv" != "$final_venv" ]; then
    "$venv/bin/python" - "$venv" "$final_venv" <<'EOF'
import os
import sys

staged, final = (arg.encode() for arg in sys.argv[1:3])
for top, _dirs, files in os.walk(staged):
    for name in files:
        path = os.path.join(top, name)
        if os.path.islink(path) or name.endswith(b".pyc"):
            continue
        with open(path, "rb") as fh:
            data = fh.read()
        if staged in data and b"\0" not in data:  # text only; bytecode is compiled again below
            with open(path, "wb") as fh:  # in place: the mode stays
                fh.write(data.replace(staged, final))
EOF
    find "$venv" -name __pycache__ -type d -prune -exec rm -rf {} +
  fi
  # pip ran with --no-compile. A file that does not compile (a package's Python 2 example) is
  # never imported, and pip ignores it too: compileall's status is not the install's.
  "$venv/bin/python" -m compileall -q -d "$final_venv/lib" "$venv/lib" >/dev/null || true
}

# pip builds from a copy, so no build/ or egg-info owned by root lands in the clone.
build_copy() {
  local dir=$1
  mkdir -p "$dir"
  # -L: daemon/cookie_supervisor/RUNBOOK.md links to alerts/RUNBOOK.md (served at /runbook)
  cp -rL "$src/pyproject.toml" "$src/README.md" "$src/daemon" "$dir/"
  rm -rf "$dir"/daemon/*.egg-info
  # the git revision, for cookie_supervisor_build_info{revision} (no .git where it is installed)
  git -C "$src" rev-parse --short=12 HEAD > "$dir/daemon/cookie_supervisor/REVISION" 2>/dev/null \
    || rm -f "$dir/daemon/cookie_supervisor/REVISION"
}

install_package() {
  local package=${COOKIE_SUPERVISOR_PACKAGE:-}
  local tmp=""
  if [ -z "$package" ]; then
    tmp=$(mktemp -d)
    build_copy "$tmp"
    package=$tmp
  fi
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  # shellcheck disable=SC2086  # options are words on purpose
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-compile \
    ${PIP_INSTALL_OPTIONS:-} "$package"
  [ -z "$tmp" ] || rm -rf "$tmp"
  relocate_venv
}

do_install() {
  check_python
  ensure_user
  install -d -m 0755 "$opt" "$(dirname "$unit")" "$(dirname "$bin")"
  install_package
  install -m 0644 "$src/README.md" "$opt/README.md"
  install -m 0644 "$src/systemd/$name.service" "$unit"
  install -d -m 0755 "$confdir"
  if [ -e "$envfile" ]; then
    say "kept $envfile (never overwritten; the new example is $opt/$name.env.example)"
  else
    install -m 0600 "$src/systemd/$name.env.example" "$envfile"
    say "wrote $envfile: set YT_DLP_COOKIES_FILE and REDIS_URL there"
  fi
  install -m 0644 "$src/systemd/$name.env.example" "$opt/$name.env.example"
  # The link points at the final path, also when staged under DESTDIR.
  ln -sfn "/opt/$name/.venv/bin/$name" "$bin"
  systemd_reload
  say "installed; start with: systemctl enable --now $name"
}

do_uninstall() {
  if [ -z "$root" ] && [ -d /run/systemd/system ] && systemctl is-active --quiet "$name"; then
    say "the service is running: systemctl disable --now $name first"
    exit 1
  fi
  rm -f "$unit" "$bin"
  rm -rf "$opt"
  systemd_reload
  say "removed the unit, $opt and the command; kept /etc/$name and /var/lib/$name"
}

case "${1:-}" in
  install) do_install ;;
  uninstall) do_uninstall ;;
  build-copy) build_copy "${2:?build-copy needs a directory}" ;;
  *)
    echo "usage: $0 install|uninstall|build-copy DIR" >&2
    exit 2
    ;;
esac
