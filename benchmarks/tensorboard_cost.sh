#!/usr/bin/env bash
# What Tune's TensorBoard logger (tracking.tensorboard: true) costs a search: the quickstart search with and
# without it, interleaved, REPEATS times each, each as a whole `fracture-tune search` process timed from its
# start; prints one line per run (wall seconds, event files and their bytes, the load average after).
#   bash benchmarks/tensorboard_cost.sh [REPEATS] [SCRATCH]      (needs tensorboardX: the [tensorboard] extra)
set -euo pipefail
REPEATS=${1:-3}
SCRATCH=${2:-$(mktemp -d /tmp/fracture-tune-tb-XXXX)}
CLI=${FRACTURE_TUNE:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/fracture-tune}
cd "$SCRATCH"
for rep in $(seq 1 "$REPEATS"); do
  for tb in false true; do
    rm -rf .fracture-tune mlflow.db mlartifacts
    start=$(date +%s.%N)
    "$CLI" search --config quickstart --name "tb-$tb-$rep" --set "tracking.tensorboard=$tb" \
      --tracking-uri "sqlite:///$SCRATCH/mlflow.db" > "log-$tb-$rep.txt" 2>&1
    end=$(date +%s.%N)
    events=$(find .fracture-tune -name 'events.out.tfevents*' | wc -l)
    bytes=$(find .fracture-tune -name 'events.out.tfevents*' -printf '%s\n' | awk '{s+=$1} END {print s+0}')
    echo "repeat=$rep tensorboard=$tb wall_s=$(echo "$end - $start" | bc) event_files=$events" \
         "event_bytes=$bytes load=$(cut -d' ' -f1 /proc/loadavg)"
  done
done
