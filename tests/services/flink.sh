#!/usr/bin/env bash
# Apache Flink 2.2.1 standalone session cluster (1 JobManager + TaskManagers) on 127.0.0.1, installed
# from PyPI into a venv under $STATE/flink. Adaptive scheduler tuned for fast in-place rescaling,
# checkpoints every 2 s, Prometheus reporter on ports 9249-9260.
#   flink.sh up | down | status
#   flink.sh tm-start | tm-stop     add / remove one extra TaskManager (4 slots each)
# Env: FLINK_REST_PORT (default 8081), DAEDALUS_SERVICES_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FLINK_VERSION=2.2.1
REST_PORT=${FLINK_REST_PORT:-8081}
REST=http://127.0.0.1:$REST_PORT
F=$STATE/flink
VENV=$F/venv
export FLINK_CONF_DIR=$F/conf FLINK_IDENT_STRING=daedalus
JM_PIDFILE=$F/pid/flink-daedalus-standalonesession.pid
TM_PIDFILE=$F/pid/flink-daedalus-taskexecutor.pid

install_flink() {
  local have
  have=$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-flink"), m.version("apache-flink-libraries"))' 2>/dev/null || true)
  [ "$have" = "$FLINK_VERSION $FLINK_VERSION" ] && return 0
  log "installing apache-flink $FLINK_VERSION from PyPI into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  # --no-deps: the cluster needs only the jars and bin/conf, not PyFlink's Python dependencies.
  "$VENV/bin/pip" install -q --no-deps "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION" \
    >"$F/log/pip.log" 2>&1 || die "pip install of Flink failed" "$F/log/pip.log"
}

flink_home() {
  "$VENV/bin/python" -c 'import importlib.util,os;print(os.path.dirname(importlib.util.find_spec("pyflink").origin))'
}

write_config() {
  local home=$1 java_opts
  cp "$home"/conf/log4j*.properties "$FLINK_CONF_DIR"/
  java_opts=$(grep -E '^\s+all:' "$home/conf/config.yaml" | head -1 | sed 's/^\s*all:\s*//')
  cat >"$FLINK_CONF_DIR/config.yaml" <<EOF
env.java.opts.all: $java_opts
env.pid.dir: $F/pid
env.log.dir: $F/log
io.tmp.dirs: $F/tmp
web.upload.dir: $F/uploads
web.submit.enable: true
jobmanager.bind-host: 127.0.0.1
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: 6123
jobmanager.memory.process.size: 768m
jobmanager.execution.failover-strategy: region
jobmanager.scheduler: adaptive
jobmanager.adaptive-scheduler.executing.cooldown-after-rescaling: 1s
jobmanager.adaptive-scheduler.executing.resource-stabilization-timeout: 1s
jobmanager.adaptive-scheduler.resource-stabilization-timeout: 1s
taskmanager.bind-host: 127.0.0.1
taskmanager.host: 127.0.0.1
taskmanager.numberOfTaskSlots: 4
taskmanager.memory.process.size: 1024m
# Keep in-flight data to about 1 s of throughput, so a backlog waits in Kafka, where the
# autoscaler measures it, rather than in network buffers (which hold tens of thousands of
# small records and hide them from every lag metric).
taskmanager.network.memory.buffer-debloat.enabled: true
taskmanager.network.memory.buffer-debloat.target: 1s
parallelism.default: 1
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $REST_PORT
execution.checkpointing.interval: 2s
execution.checkpointing.dir: file://$F/checkpoints
execution.checkpointing.savepoint-dir: file://$F/savepoints
metrics.fetcher.update-interval: 2s
metrics.reporter.prom.factory.class: org.apache.flink.metrics.prometheus.PrometheusReporterFactory
metrics.reporter.prom.port: 9249-9260
EOF
}

taskmanagers() { # number of TMs registered at the JM (fails if REST is down)
  curl -sf --max-time 3 "$REST/overview" | python3 -c 'import sys,json;print(json.load(sys.stdin)["taskmanagers"])'
}

tm_count_at_least() { local n; n=$(taskmanagers) && [ "$n" -ge "$1" ]; }
tm_count_at_most() { local n; n=$(taskmanagers) && [ "$n" -le "$1" ]; }

up() {
  mkdir -p "$F"/{conf,log,pid,tmp,uploads,checkpoints,savepoints}
  if pidfile_alive "$JM_PIDFILE" && tm_count_at_least 1; then echo "READY flink $REST"; return 0; fi
  install_flink
  local home t0=$SECONDS
  home=$(flink_home)
  echo "$home" >"$F/flink-home"
  if ! pidfile_alive "$JM_PIDFILE"; then
    rm -f "$JM_PIDFILE"
    for p in "$REST_PORT" 6123; do port_open "$p" && die "port 127.0.0.1:$p is already in use by another process"; done
    write_config "$home"
    "$home/bin/jobmanager.sh" start >"$F/log/start.out" 2>&1 || die "jobmanager.sh start failed" "$F/log/start.out"
  fi
  pidfile_alive "$TM_PIDFILE" || { rm -f "$TM_PIDFILE"; "$home/bin/taskmanager.sh" start >>"$F/log/start.out" 2>&1 || die "taskmanager.sh start failed" "$F/log/start.out"; }
  local end=$((SECONDS + 120))
  until tm_count_at_least 1 2>/dev/null; do
    pidfile_alive "$JM_PIDFILE" || die "JobManager exited during startup" "$F"/log/*.log "$F"/log/*.out
    pidfile_alive "$TM_PIDFILE" || die "TaskManager exited during startup" "$F"/log/*.log "$F"/log/*.out
    [ $SECONDS -lt $end ] || die "no TaskManager registered after 120 s" "$F"/log/*.log "$F"/log/*.out
    sleep 0.5
  done
  log "flink up in $((SECONDS - t0)) s (logs: $F/log)"
  echo "READY flink $REST"
}

down() {
  local f stopped=0
  for f in "$TM_PIDFILE" "$JM_PIDFILE" "$F"/pid/*.pid; do # TMs first, then JM, then anything else
    [ -f "$f" ] && { stop_pidfile "$f" 60; stopped=1; }
  done
  if [ $stopped = 1 ]; then log "flink stopped"; else log "flink not running"; fi
}

status() {
  if pidfile_alive "$JM_PIDFILE"; then
    echo "flink running: $REST $(curl -sf --max-time 3 "$REST/overview" || echo '(REST not answering)')"
  else
    echo "flink stopped"; return 3
  fi
}

tm_start() {
  pidfile_alive "$JM_PIDFILE" || die "flink is not running (run: $0 up)"
  local before
  before=$(taskmanagers) || die "JobManager REST not answering"
  "$(cat "$F/flink-home")/bin/taskmanager.sh" start >>"$F/log/start.out" 2>&1 || die "taskmanager.sh start failed" "$F/log/start.out"
  wait_until 120 tm_count_at_least $((before + 1)) || die "new TaskManager did not register within 120 s" "$F"/log/*.log "$F"/log/*.out
  echo "TASKMANAGERS $(taskmanagers)"
}

tm_stop() { # stop the most recently started TaskManager; never the last one
  local pids=() p
  [ -f "$TM_PIDFILE" ] && while read -r p; do pid_ok "$p" && pids+=("$p"); done <"$TM_PIDFILE"
  [ ${#pids[@]} -ge 2 ] || die "no extra TaskManager to stop (${#pids[@]} running)"
  p=${pids[-1]}
  printf '%s\n' "${pids[@]:0:${#pids[@]}-1}" >"$TM_PIDFILE"
  echo "$p" >"$F/pid/tm-stopping.pid"
  stop_pidfile "$F/pid/tm-stopping.pid" 60
  wait_until 60 tm_count_at_most $((${#pids[@]} - 1)) || log "warning: JobManager still lists the stopped TaskManager"
  echo "TASKMANAGERS $(taskmanagers)"
}

cmd=${1:-}
shift || true
case "$cmd" in
  up | down | status) "$cmd" "$@" ;;
  tm-start) tm_start ;;
  tm-stop) tm_stop ;;
  *) echo "usage: $0 up|down|status|tm-start|tm-stop" >&2; exit 2 ;;
esac
