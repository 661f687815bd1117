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
# test): no user is created and systemctl is never called. Other knobs:
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
  "$venv/bin/python" -m pip install -q --disable-pip-version-check ${PIP_INSTALL_OPTIONS:-} "$package"
  [ -z "$tmp" ] || rm -rf "$tmp"
}

do_install() {
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
