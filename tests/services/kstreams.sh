#!/usr/bin/env bash
# The Kafka Streams word count (jobs/kstreams-wordcount) with the Prometheus JMX exporter agent.
#   kstreams.sh build                          # mvn package, once (jar + agent in target/)
#   kstreams.sh instance INDEX PORT [ARGS...]  # one instance in the foreground (exec java):
#                                              # metrics on 127.0.0.1:PORT, state in
#                                              # <state>/kstreams/INDEX; ARGS go to the app
#                                              # (--bootstrap --input --output --app-id --cost-us);
#                                              # a static member "instance-INDEX" that leaves
#                                              # the group when stopped
# The autoscaler's process group runs `instance` once per instance and stops it with SIGTERM.
# Prometheus (prometheus.sh) scrapes 127.0.0.1:9400-9407 as job "kstreams".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JOB_DIR=$REPO_ROOT/jobs/kstreams-wordcount
JAR=$JOB_DIR/target/kstreams-wordcount.jar
AGENT=$JOB_DIR/target/jmx_prometheus_javaagent.jar
CONF=$JOB_DIR/src/main/resources/jmx-exporter.yaml
K=$STATE/kstreams

build() {
  mkdir -p "$K"
  local newest
  newest=$(find "$JOB_DIR/src" "$JOB_DIR/pom.xml" -newer "$JAR" 2>/dev/null | head -1 || true)
  if [ -f "$JAR" ] && [ -f "$AGENT" ] && [ -z "$newest" ]; then
    echo "READY kstreams-wordcount $JAR"; return 0
  fi
  command -v mvn >/dev/null || die "mvn is not installed"
  log "building jobs/kstreams-wordcount"
  (cd "$JOB_DIR" && mvn -q -B package -DskipTests) >"$K/build.log" 2>&1 \
    || die "mvn package failed" "$K/build.log"
  [ -f "$JAR" ] && [ -f "$AGENT" ] || die "the build did not produce $JAR and $AGENT" "$K/build.log"
  echo "READY kstreams-wordcount $JAR"
}

instance() {
  local index=${1:?index} port=${2:?port}
  shift 2
  [ -f "$JAR" ] || die "$JAR is missing: run $0 build"
  mkdir -p "$K/$index"
  exec java -Xms64m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    "-javaagent:$AGENT=127.0.0.1:$port:$CONF" \
    -jar "$JAR" --state-dir "$K/$index" --instance-id "instance-$index" "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
  build) build ;;
  instance) instance "$@" ;;
  *) echo "usage: $0 build | instance INDEX PORT [ARGS...]" >&2; exit 2 ;;
esac
