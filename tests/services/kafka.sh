#!/usr/bin/env bash
# Single-node Apache Kafka 4.1 (KRaft, combined broker+controller) on 127.0.0.1 for integration tests.
# Jars come from Maven Central via tests/services/kafka/pom.xml; state lives in $STATE/kafka.
#   kafka.sh up | down | status
#   kafka.sh topic NAME PARTITIONS    create a topic (idempotent)
#   kafka.sh partitions NAME N        grow a topic to N partitions
#   kafka.sh count TOPIC              exact number of committed records (read_committed)
#   kafka.sh produce TOPIC            send stdin lines, one record per line (ConsoleProducer)
# Env: KAFKA_PORT (default 9092; the controller listens on KAFKA_PORT+1), DAEDALUS_SERVICES_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT=${KAFKA_PORT:-9092}
CPORT=$((PORT + 1))
BOOTSTRAP=127.0.0.1:$PORT
K=$STATE/kafka
POM=$SERVICES_DIR/kafka/pom.xml
PIDFILE=$K/kafka.pid
TOOL_JAVA=(java -Xmx256m -XX:TieredStopAtLevel=1 "-Dlog4j2.configurationFile=$K/tools-log4j2.properties" -cp "$K/libs/*")

fetch_libs() {
  local stamp=$K/libs/.pom.md5 want
  want=$(md5sum <"$POM" | cut -d' ' -f1)
  [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && return 0
  log "fetching Kafka jars with Maven into $K/libs"
  rm -rf "$K/libs"
  mvn -q -B -f "$POM" dependency:copy-dependencies -DoutputDirectory="$K/libs" >"$K/logs/mvn.log" 2>&1 \
    || die "mvn could not fetch the Kafka jars" "$K/logs/mvn.log"
  echo "$want" >"$stamp"
}

write_config() {
  cat >"$K/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$K/data
num.partitions=4
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
  cat >"$K/log4j2.properties" <<EOF
appender.file.type = File
appender.file.name = file
appender.file.fileName = $K/logs/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
EOF
  cat >"$K/tools-log4j2.properties" <<EOF
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
EOF
}

list_topics() { "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list; }

require_running() { pidfile_alive "$PIDFILE" || die "kafka is not running (run: $0 up)"; }

up() {
  mkdir -p "$K/logs"
  if pidfile_alive "$PIDFILE"; then
    list_topics >/dev/null 2>&1 || die "kafka process $(cat "$PIDFILE") is alive but not answering" "$K/logs/server.log"
    echo "READY kafka $BOOTSTRAP"; return 0
  fi
  for p in "$PORT" "$CPORT"; do port_open "$p" && die "port 127.0.0.1:$p is already in use by another process"; done
  command -v java >/dev/null || die "java not found"
  local t0=$SECONDS
  fetch_libs
  write_config
  if [ ! -f "$K/data/meta.properties" ]; then
    [ -f "$K/cluster.id" ] || "${TOOL_JAVA[@]}" kafka.tools.StorageTool random-uuid >"$K/cluster.id"
    "${TOOL_JAVA[@]}" kafka.tools.StorageTool format -t "$(cat "$K/cluster.id")" -c "$K/server.properties" \
      >"$K/logs/format.log" 2>&1 || die "storage format failed" "$K/logs/format.log"
  fi
  nohup java -Xms512m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true \
    "-Dlog4j2.configurationFile=$K/log4j2.properties" "-Dkafka.logs.dir=$K/logs" \
    -cp "$K/libs/*" kafka.Kafka "$K/server.properties" >"$K/logs/stdout.log" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$PIDFILE"
  local end=$((SECONDS + 120))
  until port_open "$PORT" && list_topics >/dev/null 2>&1; do
    started_alive "$pid" || die "kafka exited during startup" "$K/logs/stdout.log" "$K/logs/server.log"
    [ $SECONDS -lt $end ] || die "kafka not ready after 120 s" "$K/logs/server.log"
    sleep 0.5
  done
  log "kafka up in $((SECONDS - t0)) s (logs: $K/logs)"
  echo "READY kafka $BOOTSTRAP"
}

down() {
  if [ -f "$PIDFILE" ]; then stop_pidfile "$PIDFILE" 60; log "kafka stopped"; else log "kafka not running"; fi
}

status() {
  if pidfile_alive "$PIDFILE"; then echo "kafka running (pid $(cat "$PIDFILE")) on $BOOTSTRAP"; else echo "kafka stopped"; return 3; fi
}

topic() {
  [ $# -eq 2 ] || die "usage: $0 topic NAME PARTITIONS"
  require_running
  "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "$1" --partitions "$2" --replication-factor 1
  "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --describe --topic "$1" | head -1
}

partitions() {
  [ $# -eq 2 ] || die "usage: $0 partitions NAME N"
  require_running
  "${TOOL_JAVA[@]}" org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --alter \
    --topic "$1" --partitions "$2"
}

count() {
  [ $# -eq 1 ] || die "usage: $0 count TOPIC"
  require_running
  "${TOOL_JAVA[@]}" "$SERVICES_DIR/kafka/CountCommitted.java" "$BOOTSTRAP" "$1" "${KAFKA_COUNT_TIMEOUT_MS:-60000}"
}

produce() {
  [ $# -eq 1 ] || die "usage: $0 produce TOPIC  (lines on stdin)"
  require_running
  "${TOOL_JAVA[@]}" org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic "$1"
}

cmd=${1:-}
shift || true
case "$cmd" in
  up | down | status | topic | partitions | count | produce) "$cmd" "$@" ;;
  *) echo "usage: $0 up|down|status|topic NAME PARTITIONS|partitions NAME N|count TOPIC|produce TOPIC" >&2; exit 2 ;;
esac
