#!/usr/bin/env bash
# The FracAtlas quality table (issue #5): for each split seed, on the same leak-safe 70/15/15 grouped split,
#   (a) the seed's base recipe and (b) the seed's tuned recipe (docs/seed_recipes.md), 30 epochs each
#       — one `retrain --config-json` per split seed: (b) is its model, (a) its base-recipe row;
#   (c) `fracture-tune search` (configs/fracatlas-h100.yaml) then `retrain --search` of its best trial.
# Test metrics with 95 % bootstrap CIs come from each retrain's report.json; benchmarks/fracatlas_table.py
# turns them into the table. Meant for a GPU machine (minutes there; hours on a 2-core CPU).
#
#   OUT=/results PHASE=all bash benchmarks/fracatlas_quality.sh          # baselines, then searches
#   OUT=/results PHASE=baselines DATA=/data/fracatlas bash benchmarks/fracatlas_quality.sh
#   OUT=/results PHASE=search SEARCH_BUDGET_S=75 bash benchmarks/fracatlas_quality.sh
#   OUT=/tmp/q DEVICE=cpu SMOKE=1 bash benchmarks/fracatlas_quality.sh   # the same path, tiny, on CPU
#   OUT=/tmp/q PHASE=search CONFIG=configs/fracatlas-laptop.yaml DEVICE=cpu IMAGE_SIZE=64 STEP_TIMEOUT=900 \
#     WORK=.fracture-tune/quality-laptop bash benchmarks/fracatlas_quality.sh        # (c) on a 2-core CPU
#
# PHASE=search starts the CUDA MPS daemon first (MPS=0: without), so the trials sharing the GPU overlap.
#
# Needs the project's dependencies (ray, optuna, mlflow for PHASE=search; mlflow, not ray, for baselines) and
# the package importable as fracture_tune. Data: $DATA, else $FRACATLAS_DIR (default: the Makefile's).
set -uo pipefail

PYTHON=${PYTHON:-python3}
OUT=${OUT:?set OUT to the folder the results go to}
DATA=${DATA:-${FRACATLAS_DIR:-../shared/data/fracatlas}}
PHASE=${PHASE:-all}
SPLIT_SEEDS=${SPLIT_SEEDS:-0 1 2}
CONFIG=${CONFIG:-configs/fracatlas-h100.yaml}
NAME_PREFIX=${NAME_PREFIX:-$(basename "$CONFIG" .yaml)}  # searches are named <prefix>-s<split seed>
SEARCH_BUDGET_S=${SEARCH_BUDGET_S:-}
EPOCHS=${EPOCHS:-30}
IMAGE_SIZE=${IMAGE_SIZE:-256}
DEVICE=${DEVICE:-cuda}
SMOKE=${SMOKE:-0}
WORK=${WORK:-.fracture-tune/quality}
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
cd "$(dirname "$0")/.."
mkdir -p "$OUT" "$WORK"
LOG="$OUT/fracatlas_quality.log"
FT=("$PYTHON" -m fracture_tune.search.cli)
log() { echo "[quality $(date +%H:%M:%S)] $*" | tee -a "$LOG"; }

SEARCH_SETS=(--set "dataset.path=$DATA" --set "dataset.image_size=$IMAGE_SIZE" --set "training.device=$DEVICE")
[ -n "$SEARCH_BUDGET_S" ] && SEARCH_SETS+=(--set "budget.time_budget_s=$SEARCH_BUDGET_S")
TUNED_AUG_FACTOR=10
if [ "$SMOKE" = 1 ]; then
  # The same commands on a few CPU-sized steps: 32 px, 2 epochs, 2 one-epoch trials.
  EPOCHS=2; IMAGE_SIZE=32; TUNED_AUG_FACTOR=1
  SEARCH_SETS=(--set "dataset.path=$DATA" --set "dataset.image_size=32" --set training.device=cpu
               --set training.epochs=1 --set scheduler.max_t=1 --set scheduler.grace_period=1
               --set budget.num_trials=2 --set resources.max_concurrent_trials=1 --set resources.gpus_per_trial=0
               --set resources.cpus_per_trial=1 --set best_trial.min_epochs=1 --set searcher.n_startup_trials=1
               --set 'space.params.model.choices=[tunable_cnn]' --set 'space.params.input_size.choices=[32]'
               --set 'searcher.points_to_evaluate=[]')
fi
status=0

run_baselines() {
  # The seed's tuned recipe, docs/seed_recipes.md: tunable_cnn 32/128/256, dropout 0.7, Adam 0.0058, batch 32,
  # augmentation factor 10, 128 px; retrain adds the seed's base recipe (base_cnn, Adam 1e-3, batch 16,
  # no augmentation) as its comparison row, same split, same epochs, same input size.
  cat >"$WORK/seed_tuned.json" <<JSON
{"model": "tunable_cnn", "c1": 32, "c2": 128, "c3": 256, "dropout": 0.7, "optimizer": "adam", "lr": 0.0058,
 "batch_size": 32, "weight_decay": 0.0, "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0,
 "class_weighting": "none", "aug_strength": 1.0, "aug_factor": $TUNED_AUG_FACTOR,
 "input_size": $([ "$SMOKE" = 1 ] && echo 32 || echo 128), "device": "$DEVICE", "seed": 0}
JSON
  local pids=()
  for seed in $SPLIT_SEEDS; do
    local dataset
    dataset=$("$PYTHON" -c "from fracture_tune.data.prepare import prepare_dataset as p; \
print(p('$DATA', image_size=$IMAGE_SIZE, seed=$seed).cache_dir)" 2>>"$LOG" | tail -1)
    [ -d "$dataset" ] || { log "prepare failed for split seed $seed"; status=1; continue; }
    log "split seed $seed: prepared $dataset; retrain --config-json seed_tuned.json (+ base-recipe row)"
    # Split seeds run side by side: small models leave the GPU mostly idle one at a time.
    timeout "$STEP_TIMEOUT" "${FT[@]}" retrain --config-json "$WORK/seed_tuned.json" --dataset "$dataset" \
      --epochs "$EPOCHS" --out "$WORK/s$seed/seed_recipes" --no-register --device "$DEVICE" \
      --tracking-uri "sqlite:///$WORK/mlflow-baselines-s$seed.db" >"$WORK/baselines-s$seed.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { log "a baseline retrain failed (exit $?); see $WORK/baselines-s*.log"; status=1; }
  done
}

start_mps() {
  # Eight trials share the GPU: under CUDA MPS their kernels run side by side instead of time-slicing
  # (4 packed trials summed 17.0k vs 11.4k images/s on an H100, BENCHMARKS.md "Training throughput").
  # MPS=0 skips it.
  [ "$DEVICE" = cuda ] && [ "${MPS:-1}" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null || return 0
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/ft-mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/ft-mps-log
  mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
  if nvidia-cuda-mps-control -d; then
    log "CUDA MPS daemon started (the search's Ray workers inherit its pipe directory)"
    trap 'echo quit | nvidia-cuda-mps-control' EXIT
  else
    log "nvidia-cuda-mps-control -d failed: trials time-slice the GPU"
  fi
}

run_searches() {
  start_mps
  for seed in $SPLIT_SEEDS; do
    local name="$NAME_PREFIX-s$seed"
    log "split seed $seed: search $name"
    timeout "$STEP_TIMEOUT" "${FT[@]}" search --config "$CONFIG" --name "$name" \
      --set "dataset.split_seed=$seed" "${SEARCH_SETS[@]}" >"$WORK/search-s$seed.log" 2>&1 \
      || { log "search $name failed (exit $?); see $WORK/search-s$seed.log"; status=1; continue; }
    log "split seed $seed: retrain --search $name"
    timeout "$STEP_TIMEOUT" "${FT[@]}" retrain --search "$name" --epochs "$EPOCHS" --no-baseline \
      --out "$WORK/s$seed/search" --device "$DEVICE" >"$WORK/retrain-s$seed.log" 2>&1 \
      || { log "retrain of $name failed (exit $?); see $WORK/retrain-s$seed.log"; status=1; }
    collect  # after every split seed: a run cut off by a time limit still leaves what finished in $OUT
  done
}

collect() {
  [ -n "$(ls "$WORK"/s*/*/report.json 2>/dev/null)" ] || return 0
  "$PYTHON" benchmarks/fracatlas_table.py --work "$WORK" --out "$OUT/fracatlas_table.json" \
    2>&1 | tee "$OUT/fracatlas_table.md" | tee -a "$LOG"
  # Reports, search results and logs in one archive: one file to copy back from the GPU machine.
  tar -czf "$OUT/fracatlas_$PHASE.tar.gz" --exclude='*/model/*' --exclude='*.pt' \
    "$WORK"/*.log "$WORK"/s*/ .fracture-tune/runs/"$NAME_PREFIX"-s*/results.* \
    .fracture-tune/runs/"$NAME_PREFIX"-s*/best_trial.json 2>/dev/null
}

case "$PHASE" in
  baselines) run_baselines ;;
  search) run_searches ;;
  all) run_baselines; collect; run_searches ;;
  *) log "PHASE must be baselines, search or all, not $PHASE"; exit 2 ;;
esac
collect
log "done (status $status); results in $OUT"
exit $status
