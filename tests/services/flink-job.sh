#!/usr/bin/env bash
# Submit / cancel / rescale the jobs/flink-wordcount job on the local Flink cluster over REST.
#   flink-job.sh submit [PARALLELISM] [extra job args...]   prints the job id once all tasks run
#   flink-job.sh cancel JOBID
#   flink-job.sh rescale JOBID PARALLELISM                  in place (adaptive scheduler), all vertices
# Default job args: --bootstrap 127.0.0.1:$KAFKA_PORT --input words --output counts
#   --group daedalus-wordcount --cost-us 20 (extra args come later and override them).
# Builds the jar with Maven if it is missing. Env: FLINK_REST_PORT, KAFKA_PORT.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REST=http://127.0.0.1:${FLINK_REST_PORT:-8081}
JOB_DIR=$REPO_ROOT/jobs/flink-wordcount
JAR=$JOB_DIR/target/flink-wordcount.jar

json() { python3 -c "import sys,json; d=json.load(sys.stdin); print($1)"; }

# all_running JOBID [PARALLELISM]: job RUNNING and every vertex RUNNING (at PARALLELISM if given).
all_running() {
  curl -sf --max-time 3 "$REST/jobs/$1" | python3 -c '
import sys, json
d = json.load(sys.stdin); p = int(sys.argv[1]) if len(sys.argv) > 1 else None
ok = d["state"] == "RUNNING" and all(v["status"] == "RUNNING" and (p is None or v["parallelism"] == p) for v in d["vertices"])
sys.exit(0 if ok else 1)' "${@:2}"
}

submit() {
  local p=${1:-1}
  shift || true
  curl -sf --max-time 3 "$REST/overview" >/dev/null || die "Flink REST not answering at $REST (run tests/services/flink.sh up)"
  if [ ! -f "$JAR" ]; then
    log "building $JAR"
    mkdir -p "$STATE"
    (cd "$JOB_DIR" && mvn -q -B package -DskipTests) >"$STATE/flink-wordcount-build.log" 2>&1 \
      || die "mvn package failed" "$STATE/flink-wordcount-build.log"
  fi
  local jar_id body resp job
  jar_id=$(curl -sf -X POST -F "jarfile=@$JAR" "$REST/jars/upload" | json 'd["filename"].split("/")[-1]') \
    || die "jar upload failed"
  body=$(python3 -c 'import sys,json; print(json.dumps({"parallelism": int(sys.argv[1]), "programArgsList": sys.argv[2:]}))' \
    "$p" --bootstrap "127.0.0.1:${KAFKA_PORT:-9092}" --input words --output counts --group daedalus-wordcount --cost-us 20 "$@")
  resp=$(curl -s -X POST -H 'Content-Type: application/json' -d "$body" "$REST/jars/$jar_id/run")
  curl -sf -X DELETE "$REST/jars/$jar_id" >/dev/null || true # the cluster keeps its own copy of the code
  job=$(echo "$resp" | json 'd["jobid"]' 2>/dev/null) || die "job submission failed: $resp"
  wait_until 120 all_running "$job" || die "job $job not RUNNING after 120 s: $(curl -s "$REST/jobs/$job" | head -c 2000)"
  echo "$job"
}

cancel() {
  [ $# -eq 1 ] || die "usage: $0 cancel JOBID"
  curl -sf -X PATCH "$REST/jobs/$1?mode=cancel" >/dev/null || die "cancel of job $1 failed"
  wait_until 60 bash -c "curl -sf '$REST/jobs/$1' | grep -q '\"state\":\"CANCELED\"'" || die "job $1 not CANCELED after 60 s"
  log "job $1 cancelled"
}

rescale() {
  [ $# -eq 2 ] || die "usage: $0 rescale JOBID PARALLELISM"
  local job=$1 p=$2 body t0
  body=$(curl -sf "$REST/jobs/$job" | python3 -c '
import sys, json
p = int(sys.argv[1])
print(json.dumps({v["id"]: {"parallelism": {"lowerBound": 1, "upperBound": p}} for v in json.load(sys.stdin)["vertices"]}))' "$p") \
    || die "job $job not found"
  t0=$(date +%s.%N)
  curl -sf -X PUT -H 'Content-Type: application/json' -d "$body" "$REST/jobs/$job/resource-requirements" >/dev/null \
    || die "PUT resource-requirements failed"
  wait_until 120 all_running "$job" "$p" || die "job $job not RUNNING at parallelism $p after 120 s"
  log "job $job running at parallelism $p after $(python3 -c "import time;print(round(time.time()-$t0,1))") s"
}

cmd=${1:-}
shift || true
case "$cmd" in
  submit | cancel | rescale) "$cmd" "$@" ;;
  *) echo "usage: $0 submit [PARALLELISM] [args...] | cancel JOBID | rescale JOBID PARALLELISM" >&2; exit 2 ;;
esac
