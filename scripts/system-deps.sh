#!/usr/bin/env bash
# Installs the Debian packages a make target needs — only those whose command is missing, and
# without starting or stopping any service.
#
#   scripts/system-deps.sh run|test|bench|ci
#
# Nothing happens when every command is present. Otherwise apt-get installs the missing packages
# while a temporary /usr/sbin/policy-rc.d forbids service starts (exit 101, see invoke-rc.d(8)):
# the tests need the binaries (redis-server, promtool, amtool...), never the services, and this
# machine may be the one whose Redis the Bull queue lives in. An existing policy-rc.d is left as
# it is. systemctl is never called.
set -euo pipefail

missing=()
need() {  # need PACKAGE TEST...: the package when none of the tests passes
  local package=$1
  shift
  for check in "$@"; do
    if [[ $check == /* ]]; then [ -x "$check" ] && return 0; else command -v "$check" >/dev/null && return 0; fi
  done
  missing+=("$package")
}
python_venv() { python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv); }

case "${1:-}" in
  ci)
    need make make
    need python3 python3
    python_venv
    ;;
  run)
    need redis-server redis-server
    python_venv
    ;;
  test | bench)
    need redis-server redis-server
    need prometheus promtool
    need prometheus prometheus  # tests/test_alert_mail.py runs it (and the next) on loopback
    need prometheus-alertmanager amtool
    need prometheus-alertmanager prometheus-alertmanager alertmanager
    need systemd-journal-remote /lib/systemd/systemd-journal-remote /usr/lib/systemd/systemd-journal-remote
    need nodejs node
    need npm npm
    python_venv
    if [ "$1" = bench ]; then need wrk wrk; fi
    ;;
  *)
    echo "usage: $0 run|test|bench|ci" >&2
    exit 2
    ;;
esac

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi

# POLICY_RC_D: only for this script's own test.
policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d}
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\n# written by cookie-supervisor scripts/system-deps.sh during apt-get; removed after\nexit 101\n' >"$policy"
  chmod 0755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

echo "installing Debian packages (services not started): ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
