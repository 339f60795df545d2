#!/usr/bin/env bash
# Prometheus (Debian package) on 127.0.0.1:9090 scraping every 2 s: Flink's Prometheus reporter
# ports 127.0.0.1:9249-9260 (job "flink", the range flink.sh gives its reporter), the Kafka Streams instances' JMX exporters
# 127.0.0.1:9400-9407 (job "kstreams", see kstreams.sh), plus PROM_EXTRA_TARGETS
# (comma-separated host:port, job "extra").
# No systemd here: the package's service is never used; this script starts the binary itself.
#   prometheus.sh up | down | status
# Env: PROM_PORT (default 9090), PROM_EXTRA_TARGETS, DAEDALUS_SERVICES_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${PROM_PORT:-9090}
URL=http://127.0.0.1:$PORT
P=$STATE/prometheus
PIDFILE=$P/prometheus.pid

install_prometheus() {
  command -v prometheus >/dev/null && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "prometheus is not installed, and installing it from Debian needs root or sudo"
    sudo="sudo -n"
  fi
  log "installing prometheus from Debian"
  { $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } \
    >"$P/apt.log" 2>&1 || die "apt-get install prometheus failed" "$P/apt.log"
}

write_config() {
  local extra="" t
  if [ -n "${PROM_EXTRA_TARGETS:-}" ]; then
    for t in ${PROM_EXTRA_TARGETS//,/ }; do extra+="'$t',"; done
    extra="  - job_name: extra
    static_configs: [{targets: [${extra%,}]}]"
  fi
  cat >"$P/prometheus.yml" <<EOF
global: {scrape_interval: 2s, scrape_timeout: 2s, evaluation_interval: 2s}
scrape_configs:
  - job_name: flink
    static_configs: [{targets: ['127.0.0.1:9249','127.0.0.1:9250','127.0.0.1:9251','127.0.0.1:9252','127.0.0.1:9253','127.0.0.1:9254','127.0.0.1:9255','127.0.0.1:9256','127.0.0.1:9257','127.0.0.1:9258','127.0.0.1:9259','127.0.0.1:9260']}]
  - job_name: kstreams
    static_configs: [{targets: ['127.0.0.1:9400','127.0.0.1:9401','127.0.0.1:9402','127.0.0.1:9403','127.0.0.1:9404','127.0.0.1:9405','127.0.0.1:9406','127.0.0.1:9407']}]
$extra
EOF
  if command -v promtool >/dev/null; then
    promtool check config "$P/prometheus.yml" >"$P/promtool.log" 2>&1 || die "invalid config $P/prometheus.yml" "$P/promtool.log"
  fi
}

ready() { curl -sf --max-time 2 "$URL/-/ready" >/dev/null; }

up() {
  mkdir -p "$P/data"
  if pidfile_alive "$PIDFILE"; then
    ready || die "prometheus pid $(cat "$PIDFILE") alive but not ready" "$P/prometheus.log"
    echo "READY prometheus $URL"; return 0
  fi
  port_open "$PORT" && die "port 127.0.0.1:$PORT is already in use by another process"
  install_prometheus
  write_config
  nohup prometheus --config.file="$P/prometheus.yml" --storage.tsdb.path="$P/data" \
    --web.listen-address="127.0.0.1:$PORT" --storage.tsdb.retention.time=2h \
    >"$P/prometheus.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  local end=$((SECONDS + 30))
  until ready; do
    started_alive "$pid" || die "prometheus exited during startup" "$P/prometheus.log"
    [ $SECONDS -lt $end ] || die "prometheus not ready after 30 s" "$P/prometheus.log"
    sleep 0.2
  done
  echo "READY prometheus $URL"
}

down() {
  if [ -f "$PIDFILE" ]; then stop_pidfile "$PIDFILE" 30; log "prometheus stopped"; else log "prometheus not running"; fi
}

status() {
  if pidfile_alive "$PIDFILE"; then echo "prometheus running (pid $(cat "$PIDFILE")) on $URL"; else echo "prometheus stopped"; return 3; fi
}

cmd=${1:-}
shift || true
case "$cmd" in
  up | down | status) "$cmd" ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
