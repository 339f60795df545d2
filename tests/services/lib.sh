# shellcheck shell=bash
# Shared helpers for tests/services/*.sh (sourced, not executed).
# Sets REPO_ROOT, SERVICES_DIR (the script dir) and STATE (default <repo>/.services,
# override with DAEDALUS_SERVICES_DIR). Processes are only ever stopped through pid files.

SERVICES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SERVICES_DIR/../.." && pwd)
STATE=${DAEDALUS_SERVICES_DIR:-$REPO_ROOT/.services}
mkdir -p "$STATE"
STATE=$(cd "$STATE" && pwd)

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# die MESSAGE [LOGFILE...]: print the reason and the tail of each log, exit 1.
die() {
  local msg=$1; shift
  echo "ERROR: $msg" >&2
  local f
  for f in "$@"; do
    [ -s "$f" ] && { echo "--- tail of $f ---" >&2; tail -n 40 "$f" >&2; }
  done
  exit 1
}

# pid_ok PID: the process exists and was started from this state dir (guards against pid reuse).
pid_ok() {
  local p=$1 cmd
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null || return 1
  cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || return 1
  [[ "$cmd" == *"$STATE"* ]]
}

# pidfile_alive FILE: true if any pid listed in FILE is alive (and ours).
pidfile_alive() {
  local f=$1 p
  [ -f "$f" ] || return 1
  while read -r p; do pid_ok "$p" && return 0; done <"$f"
  return 1
}

# started_alive PID: a process this script just started in the background is still running.
# Not pid_ok: until the child has exec'd, its cmdline is still this shell's, which would read
# as "exited". A child that did exit stays a zombie (nothing waits for it), so check the state.
started_alive() {
  local s
  s=$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$s" ] && [ "$s" != Z ]
}

# stop_pidfile FILE [TIMEOUT_S]: SIGTERM every pid in FILE, SIGKILL after the timeout, remove FILE.
stop_pidfile() {
  local f=$1 t=${2:-30} p pids=() i
  [ -f "$f" ] || return 0
  while read -r p; do pid_ok "$p" && pids+=("$p"); done <"$f"
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for ((i = 0; i < t * 10; i++)); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && { log "pid $p did not stop, SIGKILL"; kill -9 "$p" 2>/dev/null || true; }; done
  rm -f "$f"
}

# wait_until TIMEOUT_S CMD...: poll CMD every 0.5 s until it succeeds; false on timeout.
wait_until() {
  local t=$1; shift
  local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && return 1
    sleep 0.5
  done
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
