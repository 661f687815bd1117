#!/usr/bin/env bash
# `make run`: the daemon in the foreground with everything it needs on this machine.
# - REDIS_URL unset: a private redis-server on 127.0.0.1:$REDIS_PORT (6399) with its files under
#   ./var; when something already answers PING on that port, it is reused (and said so).
# - no cookie file configured: a demo jar under ./var (fake values), and validation downloads off,
#   because they would go to YouTube; set YT_DLP_COOKIES_FILE (or COOKIE_SUPERVISOR_CONFIG) for real use.
# - state that survives a restart: ./var/state unless COOKIE_SUPERVISOR_STATE_DIR is set.
#
# `run-dev.sh stop-redis` (make clean): stops the private redis-server this script started, the
# process its pidfile ./var/redis.pid names — only if that process is a redis-server running in
# ./var (its working directory), so a stale pidfile never kills a process that reused the pid.
set -euo pipefail
cd "$(dirname "$0")/.."
var="$PWD/var"

stop_redis() {
  local pid
  pid=$(cat "$var/redis.pid" 2>/dev/null) || return 0
  case "$pid" in '' | *[!0-9]*) return 0 ;; esac
  [ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" = "$var" ] || return 0
  grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do [ -e "/proc/$pid" ] || break; sleep 0.05; done
  echo "redis: stopped the private redis-server (pid $pid)" >&2
}

if [ "${1:-}" = stop-redis ]; then
  stop_redis
  exit 0
fi
mkdir -p "$var"

if [ -z "${REDIS_URL:-}" ]; then
  port="${REDIS_PORT:-6399}"
  if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
    echo "redis: reusing the Redis that already answers on 127.0.0.1:$port (another port: REDIS_PORT=N make run)" >&2
  else
    redis-server --port "$port" --bind 127.0.0.1 --dir "$var" --save '' --appendonly no \
      --maxmemory-policy noeviction --daemonize yes --pidfile "$var/redis.pid" --logfile "$var/redis.log"
    for _ in $(seq 100); do redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    echo "redis: started a private redis-server on 127.0.0.1:$port (make clean stops it)" >&2
  fi
  export REDIS_URL="redis://127.0.0.1:$port"
else
  echo "redis: using REDIS_URL from the environment" >&2
fi
# The URL without its password, if it has one.
echo "redis: $(sed -E 's#(://[^:/@]*:)[^@]*@#\1***@#' <<<"$REDIS_URL")" >&2

if [ -z "${YT_DLP_COOKIES_FILE:-}" ] && [ -z "${COOKIE_SUPERVISOR_CONFIG:-}" ]; then
  export YT_DLP_COOKIES_FILE="$var/cookies.txt"
  [ -f "$YT_DLP_COOKIES_FILE" ] || .venv/bin/python scripts/demo-cookies.py "$YT_DLP_COOKIES_FILE"
  export COOKIE_SUPERVISOR_VALIDATION_URLS="${COOKIE_SUPERVISOR_VALIDATION_URLS:-none}"
  echo "demo cookie file: $YT_DLP_COOKIES_FILE (validation downloads off)" >&2
fi

export COOKIE_SUPERVISOR_STATE_DIR="${COOKIE_SUPERVISOR_STATE_DIR:-$var/state}"
mkdir -p -m 0700 "$COOKIE_SUPERVISOR_STATE_DIR"
echo "state: $COOKIE_SUPERVISOR_STATE_DIR" >&2

exec .venv/bin/cookie-supervisor run
